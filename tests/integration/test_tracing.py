"""OpenTelemetry traces (issue 13, done-when 5): with the `authgate[otel]` extra and
`otel_enabled`, a `tools/call` through the HTTP gateway and through the stdio bridge (both
protocol eras) each makes a server span with guard, policy and upstream spans, and the upstream
receives the upstream span's context: the `traceparent` header (HTTP), `params._meta.traceparent`
(stdio, MCP SEP-414). A client's valid `traceparent` is continued, a malformed one ignored.

authgate runs in process (the spans go to an in-memory exporter, `otel_exporter = "global"`),
served by a real uvicorn on a real socket; the HTTP upstream is the SDK server of
tests/support/upstream_app.py, the stdio child tests/integration/stdio_servers/meta_server.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from support import requirements as req
from support.authgate_server import add_machine_client, serve_asgi_in_thread
from support.needs import unavailable
from support.ports import free_port
from support.stdio_support import (
    LEGACY_HEADERS,
    last_message,
    legacy_call,
    legacy_session,
    modern_headers,
    modern_request,
)
from support.upstream_app import build_upstream

try:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
except ImportError:  # the extra is not installed: every test here says so (and fails under CI)
    trace = None  # type: ignore[assignment]

META_SERVER = Path(__file__).resolve().parent / "stdio_servers" / "meta_server.py"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SPAN_WAIT = 10.0


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this process ends, in memory (the process's tracer provider, made if none is)."""
    if trace is None:
        unavailable("the OpenTelemetry SDK is not installed: pip install -e '.[otel]' (scripts/test.sh does)")
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    exporter.shutdown()  # the provider may outlive this module: its processor then exports nowhere


def _traced_authgate(stack: ExitStack, data_dir: Path, **settings: Any) -> tuple[str, str]:
    """authgate (tracing on, spans to the process's provider) on a real socket: (base URL, token)."""
    from authgate.config.settings import load_settings
    from authgate.server.app import build_app

    port = free_port()
    config = load_settings(
        None,
        public_url=f"http://127.0.0.1:{port}",
        data_dir=data_dir,
        otel_enabled=True,
        otel_exporter="global",
        **settings,
    )
    base = stack.enter_context(serve_asgi_in_thread(build_app(config), port, lifespan="on"))
    client_id, secret = add_machine_client("trace-test", "mcp", "--data-dir", str(data_dir))
    r = httpx.post(
        f"{base}/token",
        data={"grant_type": "client_credentials", "resource": f"{base}/mcp"},
        auth=(client_id, secret),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return base, str(r.json()["access_token"])


@pytest.fixture(scope="module")
def http_gateway(spans: InMemorySpanExporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    upstream = build_upstream(stateless=True, json_response=True)
    with ExitStack() as stack:
        upstream_base = stack.enter_context(serve_asgi_in_thread(upstream.app, lifespan="on"))
        base, token = _traced_authgate(stack, tmp_path_factory.mktemp("http"), upstream=f"{upstream_base}/mcp")
        yield SimpleNamespace(base=base, token=token, upstream=upstream)


@pytest.fixture(scope="module")
def stdio_gateway(spans: InMemorySpanExporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with ExitStack() as stack:
        base, token = _traced_authgate(
            stack, tmp_path_factory.mktemp("stdio"), upstream_command=[sys.executable, str(META_SERVER)]
        )
        yield SimpleNamespace(base=base, token=token, mcp_url=f"{base}/mcp")


# -- helpers -----------------------------------------------------------------------------------


def parse_traceparent(value: str) -> tuple[str, str]:
    """(trace id, parent span id) of a valid W3C traceparent."""
    version, trace_id, span_id, flags = value.split("-")
    assert (version, len(trace_id), len(span_id), len(flags)) == ("00", 32, 16, 2), value
    return trace_id, span_id


def trace_of(exporter: InMemorySpanExporter, trace_id: str, *names: str) -> dict[str, ReadableSpan]:
    """The spans of one trace by name, once each of `names` has ended (bounded wait: the server
    span ends just after the answer's last byte went out)."""
    deadline = time.monotonic() + SPAN_WAIT
    while True:
        found = {
            s.name: s
            for s in exporter.get_finished_spans()
            if s.context is not None and format(s.context.trace_id, "032x") == trace_id
        }
        if all(name in found for name in names) or time.monotonic() > deadline:
            missing = [n for n in names if n not in found]
            assert not missing, f"trace {trace_id}: no {missing} among {sorted(found)}"
            return found
        time.sleep(0.02)


def span_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.span_id, "016x")


def parent_id(span: ReadableSpan) -> str | None:
    return format(span.parent.span_id, "016x") if span.parent is not None else None


def assert_one_request_trace(found: dict[str, ReadableSpan], seen_upstream: str) -> None:
    """guard, policy and upstream under the server span; the upstream was handed the upstream span."""
    server = found["POST /mcp"]
    assert server.kind == trace.SpanKind.SERVER
    for name in ("authgate.guard", "authgate.policy", "authgate.upstream"):
        assert parent_id(found[name]) == span_id(server), name
    assert found["authgate.guard"].attributes["authgate.outcome"] == "allowed"
    assert found["authgate.policy"].attributes["authgate.outcome"] == "allowed"
    assert found["authgate.upstream"].kind == trace.SpanKind.CLIENT
    assert parse_traceparent(seen_upstream)[1] == span_id(found["authgate.upstream"])
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["mcp.method.name"] == "tools/call"


def call_http(gateway: Any, headers: dict[str, str] | None = None) -> str:
    """One tools/call through the HTTP gateway: the traceparent the upstream received."""
    before = len(gateway.upstream.requests)
    r = httpx.post(
        f"{gateway.base}/mcp",
        headers={**LEGACY_HEADERS, "Authorization": f"Bearer {gateway.token}", **(headers or {})},
        json={
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "t"}},
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    got = gateway.upstream.requests[before:]
    assert len(got) == 1, got
    return str(got[0]["traceparent"])


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.requirement(req.ISSUE13_TRACES_GUARD_POLICY_UPSTREAM)
def test_a_tool_call_through_the_http_gateway_is_one_trace_the_upstream_continues(
    spans: InMemorySpanExporter, http_gateway: Any
) -> None:
    seen = call_http(http_gateway)
    trace_id, _ = parse_traceparent(seen)
    found = trace_of(spans, trace_id, "POST /mcp", "authgate.guard", "authgate.policy", "authgate.upstream")
    assert_one_request_trace(found, seen)
    assert parent_id(found["POST /mcp"]) is None  # no traceparent from the client: a trace of its own
    upstream = found["authgate.upstream"]
    assert upstream.attributes["http.response.status_code"] == 200
    assert str(upstream.attributes["url.full"]).endswith("/mcp")


@pytest.mark.requirement(req.ISSUE13_TRACES_GUARD_POLICY_UPSTREAM)
def test_a_tool_call_through_the_stdio_bridge_carries_the_trace_in_meta_in_both_eras(
    spans: InMemorySpanExporter, stdio_gateway: Any
) -> None:
    session = legacy_session(stdio_gateway, stdio_gateway.token)  # 2025-11-25: a session, one child
    legacy = legacy_call(stdio_gateway, stdio_gateway.token, session, "meta", {})
    assert legacy.status_code == 200, legacy.text
    body = modern_request("tools/call", {"name": "meta", "arguments": {}})  # 2026-07-28: stateless
    body["params"]["_meta"] |= {"traceparent": f"00-{'d' * 32}-{'e' * 16}-01", "tracestate": "client=1"}
    modern = httpx.post(stdio_gateway.mcp_url, headers=modern_headers(stdio_gateway.token, body), json=body, timeout=30)
    assert modern.status_code == 200, modern.text
    ids = set()
    for answer in (legacy, modern):
        meta = json.loads(_last_result(answer)["content"][0]["text"])  # what the child's request carried
        trace_id, _ = parse_traceparent(meta["traceparent"])
        found = trace_of(spans, trace_id, "POST /mcp", "authgate.guard", "authgate.policy", "authgate.upstream")
        assert_one_request_trace(found, meta["traceparent"])
        assert found["authgate.upstream"].attributes["mcp.method.name"] == "tools/call"
        assert "io.modelcontextprotocol/protocolVersion" not in meta  # the 2026 envelope still stripped
        assert trace_id != "d" * 32 and "tracestate" not in meta  # a context in the body is replaced whole
        ids.add(trace_id)
    assert len(ids) == 2  # two requests, two traces


@pytest.mark.requirement(req.ISSUE13_TRACES_CONTINUE_CLIENT_CONTEXT)
def test_a_client_traceparent_is_continued_and_a_malformed_one_ignored(
    spans: InMemorySpanExporter, http_gateway: Any
) -> None:
    seen = call_http(http_gateway, {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    assert parse_traceparent(seen)[0] == CLIENT_TRACE  # the client's trace, on to the upstream
    found = trace_of(spans, CLIENT_TRACE, "POST /mcp", "authgate.guard", "authgate.policy", "authgate.upstream")
    assert parent_id(found["POST /mcp"]) == CLIENT_SPAN
    assert_one_request_trace(found, seen)

    for malformed in (
        f"00-{CLIENT_TRACE.upper()}-{CLIENT_SPAN}-01",  # upper-case hex
        f"00-{'0' * 32}-{CLIENT_SPAN}-01",  # the all-zero trace id
        f"00-{CLIENT_TRACE}-{CLIENT_SPAN}",  # no flags
        "not a traceparent",
    ):
        seen = call_http(http_gateway, {"traceparent": malformed})
        trace_id, _ = parse_traceparent(seen)  # a valid one of authgate's, never the client's
        assert trace_id not in (CLIENT_TRACE, CLIENT_TRACE.upper(), "0" * 32), malformed
        found = trace_of(spans, trace_id, "POST /mcp", "authgate.upstream")
        assert parent_id(found["POST /mcp"]) is None, malformed  # a trace of its own
        assert_one_request_trace(
            trace_of(spans, trace_id, "POST /mcp", "authgate.guard", "authgate.policy", "authgate.upstream"), seen
        )


@pytest.mark.requirement(req.ISSUE13_TRACES_GUARD_POLICY_UPSTREAM)
def test_a_refused_call_ends_at_the_guard_and_reaches_no_upstream(
    spans: InMemorySpanExporter, http_gateway: Any
) -> None:
    before = len(http_gateway.upstream.requests)
    r = httpx.post(
        f"{http_gateway.base}/mcp",
        headers={
            **LEGACY_HEADERS,
            "Authorization": "Bearer not-a-token",
            "traceparent": f"00-{'a' * 32}-{'b' * 16}-01",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        timeout=10,
    )
    assert r.status_code == 401
    found = trace_of(spans, "a" * 32, "POST /mcp", "authgate.guard")
    assert found["authgate.guard"].attributes["authgate.outcome"] == "refused"
    assert found["authgate.guard"].attributes["http.response.status_code"] == 401
    assert "authgate.policy" not in found and "authgate.upstream" not in found
    assert len(http_gateway.upstream.requests) == before


def _last_result(response: httpx.Response) -> dict[str, Any]:
    message = last_message(response)
    assert "result" in message, message
    return dict(message["result"])


@pytest.mark.requirement(req.ISSUE13_TRACES_EXPORTED_OVER_OTLP)
def test_authgate_serve_sends_its_spans_over_otlp_http_to_the_configured_endpoint(tmp_path: Path) -> None:
    """The production path: `authgate serve` (a real process, the built-in server) with only
    otel_enabled set exports in batches to OTEL_EXPORTER_OTLP_ENDPOINT, as service `authgate`."""
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )
    except ImportError:
        unavailable("the OTLP exporter is not installed: pip install -e '.[otel]' (scripts/test.sh does)")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from support.authgate_server import AuthgateServer

    received: list[tuple[str, str, str, str | None]] = []  # (service, trace id, name, parent span id)

    async def export(request: Request) -> Response:
        batch = ExportTraceServiceRequest.FromString(await request.body())
        for resource_spans in batch.resource_spans:
            service = next(a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name")
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    received.append((service, s.trace_id.hex(), s.name, s.parent_span_id.hex() or None))
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    collector = Starlette(routes=[Route("/v1/traces", export, methods=["POST"])])
    with serve_asgi_in_thread(collector) as otlp:
        server = AuthgateServer(
            tmp_path,
            extra_env={
                "AUTHGATE_OTEL_ENABLED": "true",
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
                "OTEL_BSP_SCHEDULE_DELAY": "50",  # ms between batches (default 5 s)
            },
        )
        server.add_user()
        server.start()
        try:
            token, _ = server.machine_token("mcp", name="otlp-test")
            r = httpx.post(
                server.mcp_url,
                headers={
                    **LEGACY_HEADERS,
                    "Authorization": f"Bearer {token}",
                    "traceparent": f"00-{'c' * 32}-{CLIENT_SPAN}-01",
                },
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}},
                },
                timeout=30,
            )
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + SPAN_WAIT
            wanted = {"POST /mcp", "authgate.guard", "authgate.policy"}
            while not wanted <= {name for _, trace_id, name, _ in received if trace_id == "c" * 32}:
                assert time.monotonic() < deadline, f"spans received: {received}"
                time.sleep(0.05)
        finally:
            server.stop()
    mine = {name: (service, parent) for service, trace_id, name, parent in received if trace_id == "c" * 32}
    assert mine["POST /mcp"] == ("authgate", CLIENT_SPAN)
    assert all(service == "authgate" for service, _ in mine.values())


NO_SDK = """
import sys

class NoSdk:  # the otel extra not installed: its packages cannot be found
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
            raise ModuleNotFoundError(name)
        return None

sys.meta_path.insert(0, NoSdk)
sys.argv = ["authgate", "serve"]
from authgate.cli.main import main
sys.exit(main())
"""


@pytest.mark.requirement(req.ISSUE13_TRACES_NEED_THE_EXTRA)
def test_tracing_without_the_otel_extra_is_refused_at_start_naming_the_install(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(AUTHGATE_OTEL_ENABLED="true", AUTHGATE_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run(
        [sys.executable, "-c", NO_SDK], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("authgate: configuration error: setting 'otel_enabled': is true but the OpenTelemetry SDK")
    assert "pip install -e '.[otel]'" in line and "otel_enabled = false" in line
    assert not (tmp_path / "data").exists()  # refused before anything was created
