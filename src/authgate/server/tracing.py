"""Tracing on (`otel_enabled`): the tracer provider and its exporter, and `TracedGate`, the gate
that wraps each request to the MCP endpoint in a server span with a span per check.

Imported by `server/app.py` only when tracing is on, so with it off no OpenTelemetry module
is loaded and the gate is `McpGate` itself: its hot path holds no tracing code at all
(tests/unit/test_import_cost.py; bench/hot_path.py measures the per-request cost). The spans
themselves are `authgate/tracing.py`'s.

The exporter (`otel_exporter`): `otlp` (OTLP over HTTP/protobuf, in batches; endpoint, headers
and timeouts from the standard `OTEL_EXPORTER_OTLP_*` variables), `console`, or `global` (the
tracer provider the process already installed, e.g. the application's in library mode).
Sampling follows `OTEL_TRACES_SAMPLER` (default: parent-based, always on: a client's sampled
`traceparent` is followed), the resource `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`
(service name `authgate` when neither names one), and `OTEL_SDK_DISABLED` turns it all off.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Receive, Scope, Send

from authgate._version import __version__
from authgate.config.settings import Settings
from authgate.observe import REQUEST_KEY
from authgate.policy.enforcer import PolicyEnforcer
from authgate.server.exchange import Exchange
from authgate.server.gate import McpGate
from authgate.tracing import Step, Tracing

__all__ = ["TracedGate", "attach_tracing", "open_tracing", "traced_gate"]

_GUARD_KEY = "authgate.guard_span"  # the guard's span, from _admit to _judged (or _admit's end)


def open_tracing(settings: Settings) -> Tracing:
    """The tracer of this app, from `otel_exporter`."""
    if settings.otel_exporter == "global":
        return Tracing(trace.get_tracer("authgate", __version__))
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "authgate"}))
    exporter: SpanExporter
    if settings.otel_exporter == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=resource)  # flushed and shut down at exit
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        # nobody installed one: the MCP SDK's own spans (the built-in server) join the same traces
        trace.set_tracer_provider(provider)
    return Tracing(provider.get_tracer("authgate", __version__))


def attach_tracing(app: ASGIApp, tracing: Tracing) -> None:
    """Hand the tracing to the protected app's upstream calls: the HTTP gateway's `Upstream`,
    the stdio bridge (which gives it to its children). A module not loaded holds no instance."""
    proxy = sys.modules.get("authgate.gateway.http.proxy")
    if proxy is not None and isinstance(app, proxy.HttpUpstreamProxy):
        app.upstream.tracing = tracing
    bridge = sys.modules.get("authgate.gateway.stdio.bridge")
    if bridge is not None and isinstance(app, bridge.StdioBridge):
        app.tracing = tracing


class TracedGate(McpGate):
    """`McpGate` with a server span per request and a span for the guard and the policy."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing, route: str, **checks: Any) -> None:
        super().__init__(app, **checks)
        self.tracing = tracing
        self.route = route  # the MCP endpoint's path: the server span's name, never a request's own path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.tracing.request(scope, self.route) as span:
            try:
                await super().__call__(scope, receive, send)
            finally:
                self.tracing.answered(span, scope.get(REQUEST_KEY))

    async def _admit(self, ex: Exchange, scope: Scope, send: Send) -> bool:
        if not self.tracing.recording():  # sampled out: no child spans to make (parent-based sampling)
            return await super()._admit(ex, scope, send)
        guard = scope[_GUARD_KEY] = self.tracing.step("authgate.guard")
        try:
            admitted = await super()._admit(ex, scope, send)
        except BaseException as exc:
            guard.fail(exc)
            raise
        finally:
            scope.pop(_GUARD_KEY, None)
        guard.close("allowed" if admitted else "refused", None if admitted else ex.status)  # no-op after _judged
        return admitted

    async def _judged(self, ex: Exchange, scope: Scope, enforcer: PolicyEnforcer, send: Send) -> bool:
        guard: Step | None = scope.pop(_GUARD_KEY, None)
        if guard is None:  # sampled out (_admit made no guard span)
            return await super()._judged(ex, scope, enforcer, send)
        guard.close("allowed")  # the caller is known: the rest is the policy's
        policy = self.tracing.step("authgate.policy")
        try:
            allowed = await super()._judged(ex, scope, enforcer, send)
        except BaseException as exc:
            policy.fail(exc)
            raise
        if ex.record.get("mcp_method") is not None and policy.span is not None:
            policy.span.set_attribute("mcp.method.name", str(ex.record["mcp_method"]))
        policy.close("allowed" if allowed else "refused", None if allowed else ex.status)
        return allowed


def traced_gate(settings: Settings, app: ASGIApp, route: str) -> Callable[..., McpGate]:
    """What `AuthgateApp` builds its gate with when tracing is on (the app's upstream calls
    traced too): `TracedGate`, bound to this app's tracer."""
    tracing = open_tracing(settings)
    attach_tracing(app, tracing)
    return functools.partial(TracedGate, tracing=tracing, route=route)
