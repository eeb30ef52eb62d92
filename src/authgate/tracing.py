"""OpenTelemetry traces of the MCP endpoint (setting `otel_enabled`, the `authgate[otel]` extra).

    POST /mcp                SERVER: continues the client's `traceparent`, if valid
    ├── authgate.guard       Origin/Host and the bearer token
    ├── authgate.policy      the per-operation decision on the body
    └── authgate.upstream    CLIENT: the HTTP upstream's exchange, or one request to a stdio
                             child; its context goes on to the upstream as the `traceparent`
                             header (HTTP) or `params._meta.traceparent` (stdio, every protocol
                             revision: MCP SEP-414's keys are `traceparent`, `tracestate`, `baggage`)

Imported only when tracing is on: `server/tracing.py` builds the tracer provider and the gate
that makes the first three spans, and hands a `Tracing` to the HTTP gateway's `Upstream` and
the stdio bridge's children, which hold None otherwise. So with tracing off nothing imports
OpenTelemetry and a request pays one `is None` per upstream call. A module of its own,
importing nothing of authgate's, so every layer may hold one; it imports the OpenTelemetry API
only (the SDK is `server/tracing.py`'s). The W3C formats are the global propagator's (the SDK
default, or `OTEL_PROPAGATORS`): a malformed `traceparent` is ignored and the request starts a
trace of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

__all__ = ["Step", "Tracing"]

_CARRIED = frozenset(propagate.get_global_textmap().fields)  # traceparent, tracestate, baggage
_CARRIED_BYTES = frozenset(name.encode("latin-1") for name in _CARRIED)


class Step:
    """One of the gate's checks as a span (guard, policy): started now, closed once."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span: Span | None = span

    def close(self, outcome: str, status: int | None = None) -> None:
        span, self.span = self.span, None
        if span is None:
            return
        span.set_attribute("authgate.outcome", outcome)
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        span.end()

    def fail(self, exc: BaseException) -> None:
        span, self.span = self.span, None
        if span is not None:
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            span.end()


class Tracing:
    """The spans of authgate's requests, made by one OpenTelemetry tracer."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    # -- the request and the gate's checks -------------------------------------------------

    @contextmanager
    def request(self, scope: MutableMapping[str, Any], route: str) -> Iterator[Span]:
        """The server span of one request to the MCP endpoint, current while it is served."""
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in reversed(scope.get("headers", ()))  # the first of each wins
            if name in _CARRIED_BYTES
        }
        method = str(scope.get("method", "GET"))
        with self.tracer.start_as_current_span(
            f"{method} {route}",
            context=propagate.extract(carrier),  # nothing valid in it: a trace of its own
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route, "url.scheme": scope.get("scheme", "http")},
        ) as span:
            yield span

    def answered(self, span: Span, record: Any) -> None:
        """What the request log noted (server/logs.py), on the server span."""
        if not isinstance(record, dict):
            return
        status = record.get("status")
        if isinstance(status, int):
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(StatusCode.ERROR)
        for key, attribute in (
            ("request_id", "authgate.request_id"),
            ("mcp_method", "mcp.method.name"),
            ("mcp_target", "authgate.mcp.target"),
            ("client_id", "authgate.client_id"),
        ):
            if (value := record.get(key)) is not None:
                span.set_attribute(attribute, str(value))

    def recording(self) -> bool:
        """Whether the current (server) span is sampled: if not, its children would not be either."""
        return trace.get_current_span().is_recording()

    def step(self, name: str) -> Step:
        """A check of the gate, a child of the current (server) span."""
        return Step(self.tracer.start_span(name))

    # -- the upstream ----------------------------------------------------------------------

    @asynccontextmanager
    async def upstream_http(
        self, method: str, url: str, headers: list[tuple[str, str]], reply: Any
    ) -> AsyncIterator[Span]:
        """The HTTP gateway's exchange with its upstream (`url` as it may be printed), with the
        span's context in `headers` (any the client sent replaced)."""
        with self.tracer.start_as_current_span(
            "authgate.upstream",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": method, "url.full": url, "network.transport": "tcp"},
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            headers[:] = [(k, v) for k, v in headers if k.lower() not in _CARRIED] + list(carrier.items())
            try:
                yield span
            finally:
                status = getattr(reply, "status", None)  # what went back to the client (gateway/http/reply.py)
                if isinstance(status, int):
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(StatusCode.ERROR)

    def upstream_stdio(self, message: dict[str, Any], program: str) -> tuple[dict[str, Any], Span | None]:
        """One request to a stdio child: its span (ended by `ended`), and the message with the
        span's context in `params._meta` (SEP-414). A message whose params or `_meta` is not an
        object is sent as it is, untraced."""
        params = message.get("params", {})
        meta = params.get("_meta", {}) if isinstance(params, dict) else None
        if not isinstance(meta, dict):
            return message, None
        method = str(message.get("method"))
        span = self.tracer.start_span(
            "authgate.upstream",
            kind=SpanKind.CLIENT,
            attributes={"mcp.method.name": method, "network.transport": "pipe", "process.executable.name": program},
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        kept = {k: v for k, v in meta.items() if k not in _CARRIED}  # the client's own context is replaced whole
        return {**message, "params": {**params, "_meta": {**kept, **carrier}}}, span

    def ended(self, span: Span, error: str | None = None) -> None:
        """A stdio request's span, once answered, cancelled or failed (`error`)."""
        if error is not None:
            span.set_status(StatusCode.ERROR, error)
        span.end()
