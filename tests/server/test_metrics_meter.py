"""`server/metrics.py`'s meter in process: what each report counts, and that every label value
comes from a fixed set (the real server's scrape: tests/integration/test_metrics.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse

from authgate import metering
from authgate.gateway.errors import UpstreamError, UpstreamUnavailable
from authgate.gateway.stdio.errors import ChildExited
from authgate.server.metrics import Metrics
from support.requirements import ISSUE13_METRICS_BOUNDED_LABELS, ISSUE13_METRICS_COUNT_TRAFFIC

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(metrics: Metrics) -> Samples:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    routes = [("/token", None), ("/admin/clients/{client_id}", lambda p: p.startswith("/admin/clients/"))]
    found = Metrics(routes=routes, transport="stdio")
    metering.install(found)
    try:
        yield found
    finally:
        metering.install(None)


@pytest.mark.requirement(ISSUE13_METRICS_BOUNDED_LABELS)
def test_paths_become_route_templates_and_anything_else_is_other(metrics: Metrics) -> None:
    for path, status in [("/token", 200), ("/admin/clients/abc", 303), ("/x/../y", 404), (None, None), ("/t", 999)]:
        metrics.http(path, status, 0.01)
    got = samples(metrics)
    assert got[("authgate_http_requests_total", (("code", "200"), ("route", "/token")))] == 1
    assert got[("authgate_http_requests_total", (("code", "303"), ("route", "/admin/clients/{client_id}")))] == 1
    assert got[("authgate_http_requests_total", (("code", "404"), ("route", "other")))] == 1
    assert got[("authgate_http_requests_total", (("code", "none"), ("route", "other")))] == 2  # no answer; no code
    routes = {dict(labels).get("route") for (name, labels) in got if name.startswith("authgate_http")}
    assert routes == {"/token", "/admin/clients/{client_id}", "other"}


@pytest.mark.requirement(ISSUE13_METRICS_BOUNDED_LABELS)
def test_unknown_reasons_and_errors_count_as_other(metrics: Metrics) -> None:
    metrics.auth("made-up")
    metrics.token("made-up")
    metrics.upstream_error("made-up")
    response = JSONResponse({"error": "my_own_error_code"}, status_code=400)
    metrics.flow("token", None, response)
    got = samples(metrics)
    assert got[("authgate_auth_decisions_total", (("decision", "other"),))] == 1
    assert got[("authgate_token_verifications_total", (("outcome", "other"),))] == 1
    assert got[("authgate_upstream_errors_total", (("reason", "other"), ("transport", "stdio")))] == 1
    assert got[("authgate_oauth_failures_total", (("error", "other"), ("step", "token_other")))] == 1


@pytest.mark.requirement(ISSUE13_METRICS_COUNT_TRAFFIC)
def test_upstream_errors_are_counted_where_they_are_made(metrics: Metrics) -> None:
    UpstreamUnavailable("down")
    ChildExited("gone")
    UpstreamError("generic")
    got = samples(metrics)
    for reason in ("upstream_unavailable", "stdio_server_exited", "upstream_error"):
        assert got[("authgate_upstream_errors_total", (("reason", reason), ("transport", "stdio")))] == 1
    metering.install(None)
    UpstreamUnavailable("uncounted: metrics off")
    assert (
        samples(metrics)[
            ("authgate_upstream_errors_total", (("reason", "upstream_unavailable"), ("transport", "stdio")))
        ]
        == 1
    )


@pytest.mark.requirement(ISSUE13_METRICS_COUNT_TRAFFIC)
def test_flow_failures_by_step_and_error(metrics: Metrics) -> None:
    class Form(dict[str, str]):
        pass

    class Request:
        _form = Form(grant_type="refresh_token")

    metrics.flow("token", Request(), JSONResponse({"error": "invalid_grant"}, status_code=400))
    metrics.flow("authorize", None, RedirectResponse("https://client.example/cb?error=access_denied&state=s", 302))
    metrics.flow("authorize", None, RedirectResponse("https://client.example/cb?code=c&state=s", 302))
    metrics.flow("login", None, PlainTextResponse("wrong password", 401))
    metrics.flow("health", None, PlainTextResponse("ok"))  # not a step of the flow
    got = samples(metrics)
    assert got[("authgate_oauth_steps_total", (("step", "refresh"),))] == 1
    assert got[("authgate_oauth_steps_total", (("step", "authorize"),))] == 2
    assert got[("authgate_oauth_failures_total", (("error", "invalid_grant"), ("step", "refresh")))] == 1
    assert got[("authgate_oauth_failures_total", (("error", "access_denied"), ("step", "authorize")))] == 1
    assert got[("authgate_oauth_failures_total", (("error", "login_failed"), ("step", "login")))] == 1
    assert not any(("step", "health") in labels for _name, labels in got)


@pytest.mark.requirement(ISSUE13_METRICS_COUNT_TRAFFIC)
def test_histograms_are_cumulative_with_a_value_on_a_bound_in_its_bucket(metrics: Metrics) -> None:
    for seconds in (0.001, 0.001, 0.3, 100.0):
        metrics.upstream(seconds)
    metrics.store(True, 0.002, failed=True)
    got = samples(metrics)

    def bucket(le: str) -> float:
        return got[("authgate_upstream_latency_seconds_bucket", (("le", le), ("transport", "stdio")))]

    assert (bucket("0.001"), bucket("0.25"), bucket("0.5"), bucket("60.0"), bucket("+Inf")) == (2, 2, 3, 3, 4)
    assert got[("authgate_upstream_latency_seconds_count", (("transport", "stdio"),))] == 4
    assert got[("authgate_upstream_latency_seconds_sum", (("transport", "stdio"),))] == pytest.approx(100.302)
    assert got[("authgate_store_errors_total", (("kind", "write"),))] == 1
    assert got[("authgate_store_transaction_seconds_count", (("kind", "write"),))] == 1
