"""`Metrics`: the Prometheus metrics, what `authgate.metering` reports into.

Made at start only when metrics are on (settings `metrics_listen` / `metrics_on_main`), so
`prometheus_client` is imported then and never otherwise. Each metric lives in a registry of
this object's own (not the library's global one), and every label value comes from a fixed
set known at start: route templates (an unknown path is `other`), status codes, the decision
and outcome names of `authgate.metering`, OAuth error codes of `errors.py`, the gateway's
failure reasons. Label children are bound once and kept in dicts keyed by those values, so
counting a request is a dict lookup and an increment; nothing a client sends (a path, a
client id, a user or tool name) can add a series.

What is read rather than counted (the audit queue, the stdio children) is read at scrape
time by `_Live`, costing nothing per request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from authgate import metering
from authgate.server.metric_cells import Count, CounterFamily, HistogramFamily

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from authgate.audit.log import AuditLog

__all__ = ["Metrics"]

OTHER = "other"
# the OAuth endpoints as flow steps (server/app.py's route names); the token endpoint by grant type
_STEPS = {
    "as_metadata": "metadata",
    "prm": "prm",
    "jwks": "jwks",
    "register": "register",
    "authorize": "authorize",
    "login": "login",
    "consent": "consent",
    "revoke": "revoke",
    "upstream_callback": "upstream_callback",
}
_GRANT_STEPS = {"authorization_code": "token", "refresh_token": "refresh", "client_credentials": "client_credentials"}
STEPS = (*_STEPS.values(), *_GRANT_STEPS.values(), "token_other")
# what a failed step that is no OAuth error answer is (an HTML page)
_PAGE_ERRORS = {401: "login_failed", 429: "slow_down"}
PAGE_ERROR = "page_error"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def oauth_error_codes() -> frozenset[str]:
    """Every `error` an OAuthError of errors.py answers with."""
    from authgate.errors import OAuthError

    found, todo = set(), [OAuthError]
    while todo:
        cls = todo.pop()
        found.add(cls.error)
        todo += cls.__subclasses__()
    return frozenset(found)


def upstream_reasons() -> frozenset[str]:
    """Every `reason` of the gateways' UpstreamErrors (HTTP and stdio)."""
    import authgate.gateway.stdio.errors  # noqa: F401  (defines the stdio ones)
    from authgate.gateway.errors import UpstreamError

    found, todo = set(), [UpstreamError]
    while todo:
        cls = todo.pop()
        found.add(cls.reason)
        todo += cls.__subclasses__()
    return frozenset(found)


class _Route:
    """One route template's children: a counter per status code (bound on first use: at most
    the 500 codes HTTP has) and its latency histogram."""

    __slots__ = ("codes", "duration", "requests", "template")

    def __init__(self, template: str, requests: CounterFamily, duration: HistogramFamily) -> None:
        self.template = template
        self.requests = requests
        self.codes: dict[int | None, Count] = {}
        self.duration = duration.labels(template)

    def code(self, status: int | None) -> Count:
        child = self.codes.get(status)
        if child is None:
            label = str(status) if status is not None and 100 <= status <= 599 else "none"
            child = self.codes[status] = self.requests.labels(self.template, label)
        return child


class Metrics:
    """The meter of `authgate.metering`: cells counted in place (server/metric_cells.py), in a
    `prometheus_client` registry with the process's own collectors."""

    def __init__(self, *, routes: Iterable[tuple[str, Callable[[str], bool] | None]], transport: str) -> None:
        """`routes`: (template, matcher) per route, the matcher None for a template without
        parameters (matched exactly); `transport`: the upstream's, `http`, `stdio` or `none`."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.gc_collector import GCCollector
        from prometheus_client.platform_collector import PlatformCollector
        from prometheus_client.process_collector import ProcessCollector

        self.registry = reg = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=reg)
        requests = CounterFamily(
            "authgate_http_requests",
            "HTTP requests answered, by route template and status code",
            ["route", "code"],
        )
        duration = HistogramFamily(
            "authgate_http_request_duration_seconds", "time to answer, by route template", ["route"]
        )
        self._exact: dict[str | None, _Route] = {}
        self._patterns: list[tuple[Callable[[str], bool], _Route]] = []
        for template, matcher in routes:
            route = _Route(template, requests, duration)
            if matcher is None:
                self._exact[template] = route
            else:
                self._patterns.append((matcher, route))
        self._other = _Route(OTHER, requests, duration)
        decisions = CounterFamily("authgate_auth_decisions", "the guard's verdict on /mcp requests", ["decision"])
        self._decisions = _bound(decisions, metering.AUTH_DECISIONS)
        tokens = CounterFamily("authgate_token_verifications", "bearer tokens checked, by outcome", ["outcome"])
        self._tokens = _bound(tokens, metering.TOKEN_OUTCOMES)
        steps = CounterFamily("authgate_oauth_steps", "OAuth endpoint requests, by flow step", ["step"])
        self._steps = _bound(steps, STEPS)
        self._failures = CounterFamily(
            "authgate_oauth_failures",
            "OAuth steps that failed, by step and error code",
            ["step", "error"],
        )
        self._errors = oauth_error_codes() | {PAGE_ERROR, *_PAGE_ERRORS.values()}
        self._failed: dict[tuple[str, str], Count] = {}
        self.transport = transport
        upstream = HistogramFamily(
            "authgate_upstream_latency_seconds",
            "time until the upstream began its answer (HTTP: the response head; stdio: the response)",
            ["transport"],
            buckets=LATENCY_BUCKETS,
        )
        self._upstream = upstream.labels(transport)
        upstream_errors = CounterFamily(
            "authgate_upstream_errors", "upstream failures, by reason", ["transport", "reason"]
        )
        self._upstream_errors = {r: upstream_errors.labels(transport, r) for r in (*upstream_reasons(), OTHER)}
        store = HistogramFamily(
            "authgate_store_transaction_seconds",
            "store transactions, by kind",
            ["kind"],
            buckets=STORE_BUCKETS,
        )
        self._store = {True: store.labels("write"), False: store.labels("read")}
        store_errors = CounterFamily("authgate_store_errors", "store transactions that failed, by kind", ["kind"])
        self._store_errors = {True: store_errors.labels("write"), False: store_errors.labels("read")}
        for family in (requests, duration, decisions, tokens, steps, self._failures, store, store_errors):
            reg.register(family)
        if transport != "none":  # the built-in server, or an app of your own: no upstream to measure
            reg.register(upstream)
            reg.register(upstream_errors)
        self.live = _Live()
        reg.register(self.live)

    # -- the meter ---------------------------------------------------------------------------
    def http(self, path: str | None, status: int | None, seconds: float) -> None:
        route = self._exact.get(path) or self._matched(path)
        route.code(status).inc()
        route.duration.observe(seconds)

    def _matched(self, path: str | None) -> _Route:
        if path is not None:
            for matches, route in self._patterns:
                if matches(path):
                    return route
        return self._other

    def auth(self, decision: str) -> None:
        self._decisions.get(decision, self._decisions[OTHER]).inc()

    def token(self, outcome: str) -> None:
        self._tokens.get(outcome, self._tokens[OTHER]).inc()

    def flow(self, route: str, request: Any, response: Any) -> None:
        step = _STEPS.get(route)
        if step is None:
            if route != "token":
                return  # not a step of the flow (health, metrics, …)
            # the form the endpoint read, as Starlette keeps it (never read again here)
            form = getattr(request, "_form", None)
            grant = form.get("grant_type") if form is not None else None
            step = _GRANT_STEPS.get(grant, "token_other") if isinstance(grant, str) else "token_other"
        self._steps[step].inc()
        error = self._error_of(response)
        if error is not None:
            key = (step, error if error in self._errors else OTHER)
            child = self._failed.get(key)
            if child is None:
                child = self._failed[key] = self._failures.labels(*key)
            child.inc()

    def upstream(self, seconds: float) -> None:
        self._upstream.observe(seconds)

    def upstream_error(self, reason: str) -> None:
        self._upstream_errors.get(reason, self._upstream_errors[OTHER]).inc()

    def store(self, write: bool, seconds: float, failed: bool) -> None:
        self._store[write].observe(seconds)
        if failed:
            self._store_errors[write].inc()

    # -- reading answers ---------------------------------------------------------------------
    @staticmethod
    def _error_of(response: Any) -> str | None:
        """The error an OAuth endpoint's answer carries: a JSON error body (RFC 6749 §5.2), an
        error redirect (§4.1.2.1), or an HTML page answered with an error status; else None."""
        status = getattr(response, "status_code", 500)
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            if "error=" not in location:
                return None
            found = parse_qs(urlsplit(location).query).get("error")
            return found[0] if found else OTHER
        if status < 400:
            return None
        if getattr(response, "media_type", None) == "application/json":
            try:
                error = json.loads(response.body).get("error")
            except (ValueError, AttributeError):
                return OTHER
            return error if isinstance(error, str) else OTHER
        return _PAGE_ERRORS.get(status, PAGE_ERROR)


def _bound(counter: CounterFamily, values: Iterable[str]) -> dict[str, Count]:
    """The counter's child for each value (and for `other`), bound once."""
    return {value: counter.labels(value) for value in (*values, OTHER)}


class _Live:
    """What is read at scrape time: the audit queue (`AuditLog`) and the stdio children."""

    def __init__(self) -> None:
        self.audit: AuditLog | None = None
        self.children: Callable[[], int] | None = None

    def describe(self) -> list[Any]:
        return []  # unchecked: families appear as their sources do

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if self.audit is not None:
            yield GaugeMetricFamily(
                "authgate_audit_queue_depth", "audit events waiting for the writer thread", value=self.audit.queued
            )
            yield CounterMetricFamily(
                "authgate_audit_dropped", "audit events dropped because the queue was full", value=self.audit.dropped
            )
        if self.children is not None:
            yield GaugeMetricFamily(
                "authgate_stdio_children", "stdio MCP server processes running", value=self.children()
            )


if TYPE_CHECKING:
    _collector: Collector = _Live()
