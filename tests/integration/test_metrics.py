"""Prometheus metrics of a real `authgate serve` (issue 13, done-when 4), scraped over HTTP and
parsed with `prometheus_client`'s own parser.

Two servers, each started once for the module:

* `gateway`: the HTTP gateway in front of the SDK upstream, metrics on a listener of their
  own (`metrics_listen` on loopback, no token); the main listener has no /metrics.
* `bridge`: the stdio bridge (`authgate serve -- python demo_server.py`), metrics on the main
  listener (`metrics_on_main` with `metrics_token`).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from authgate.config.settings import load_settings
from authgate.errors import ConfigError
from support import headless, ports
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.flow_load import signed_in_code
from support.requirements import (
    ISSUE13_METRICS_BOUNDED_LABELS,
    ISSUE13_METRICS_COUNT_TRAFFIC,
    ISSUE13_METRICS_NOT_PUBLIC,
)
from support.stdio_support import DEMO_COMMAND, last_message, modern_headers, modern_request
from support.upstream_app import build_upstream

CALLBACK = "http://127.0.0.1:53682/callback"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
TOKEN = secrets.token_hex(32)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(url, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when none)."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def call(url: str, token: str, method: str, params: dict[str, Any], rid: int = 1) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    return httpx.post(url, json=body, headers={**HEADERS, "Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="module")
def gateway(stack: ExitStack, tmp_path_factory: pytest.TempPathFactory) -> tuple[AuthgateServer, str]:
    """(the gateway, its metrics URL)."""
    upstream = stack.enter_context(serve_asgi_in_thread(build_upstream(stateless=True).app, lifespan="on"))
    listen = f"127.0.0.1:{ports.free_port()}"
    server = AuthgateServer(
        tmp_path_factory.mktemp("metrics-gateway"),
        extra_env={"AUTHGATE_UPSTREAM": f"{upstream}/mcp", "AUTHGATE_METRICS_LISTEN": listen},
    )
    server.add_user()
    server.start()
    stack.callback(server.stop)
    return server, f"http://{listen}/metrics"


@pytest.fixture(scope="module")
def bridge(stack: ExitStack, tmp_path_factory: pytest.TempPathFactory) -> AuthgateServer:
    server = AuthgateServer(
        tmp_path_factory.mktemp("metrics-bridge"),
        serve_args=("--", *DEMO_COMMAND),
        extra_env={"AUTHGATE_METRICS_ON_MAIN": "true", "AUTHGATE_METRICS_TOKEN": TOKEN},
    )
    server.add_user()
    server.start()
    stack.callback(server.stop)
    return server


def _code_flow(server: AuthgateServer, ua: headless.HeadlessUserAgent | None = None) -> dict[str, Any]:
    """Register, authorize (sign-in, consent; in `ua` if given), redeem: the token response and
    the client_id."""
    r = httpx.post(
        server.endpoint("register"),
        json={"client_name": "metrics-test", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    client_id = r.json()["client_id"]
    code, verifier = signed_in_code(server, client_id, CALLBACK, ua)
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    r = httpx.post(
        server.endpoint("token"), data={**form, "redirect_uri": CALLBACK, "client_id": client_id}, timeout=10
    )
    assert r.status_code == 200, r.text
    return {**r.json(), "client_id": client_id}


@pytest.mark.requirement(ISSUE13_METRICS_COUNT_TRAFFIC)
def test_counters_move_with_traffic_through_the_http_gateway(gateway: tuple[AuthgateServer, str]) -> None:
    server, metrics_url = gateway
    before = scrape(metrics_url)
    tokens = _code_flow(server)
    access = tokens["access_token"]
    refreshed = httpx.post(
        server.endpoint("token"),
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": tokens["client_id"],
        },
        timeout=10,
    )
    assert refreshed.status_code == 200, refreshed.text
    bad = httpx.post(
        server.endpoint("token"),
        data={"grant_type": "authorization_code", "code": "nope", "client_id": tokens["client_id"]},
        timeout=10,
    )
    assert bad.status_code == 400, bad.text
    for rid in (1, 2):  # the second is answered from the verifier's cache
        r = call(server.mcp_url, access, "tools/call", {"name": "echo", "arguments": {"text": "hi"}}, rid)
        assert r.status_code == 200, r.text
    assert httpx.post(server.mcp_url, json={}, headers=HEADERS, timeout=10).status_code == 401
    after = scrape(metrics_url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("authgate_http_requests_total", route="/mcp", code="200") >= 2
    assert moved("authgate_http_requests_total", route="/mcp", code="401") >= 1
    assert moved("authgate_http_requests_total", route="/register", code="201") >= 1
    assert moved("authgate_http_request_duration_seconds_count", route="/token") >= 3
    assert moved("authgate_auth_decisions_total", decision="allowed") >= 2
    assert moved("authgate_auth_decisions_total", decision="no_token") >= 1
    assert moved("authgate_token_verifications_total", outcome="valid") >= 1
    assert moved("authgate_token_verifications_total", outcome="cache_hit") >= 1
    for step in ("register", "authorize", "login", "token", "refresh"):
        assert moved("authgate_oauth_steps_total", step=step) >= 1, step
    assert moved("authgate_oauth_failures_total", step="token", error="invalid_grant") == 1
    assert moved("authgate_upstream_latency_seconds_count", transport="http") >= 2
    assert moved("authgate_store_transaction_seconds_count", kind="write") >= 3
    assert moved("authgate_store_transaction_seconds_count", kind="read") >= 1
    assert ("authgate_audit_queue_depth", ()) in after
    assert value(after, "process_resident_memory_bytes") > 0


@pytest.mark.requirement(ISSUE13_METRICS_COUNT_TRAFFIC)
def test_stdio_children_latency_and_errors_through_the_bridge(bridge: AuthgateServer) -> None:
    metrics_url = bridge.url + "/metrics"
    before = scrape(metrics_url, TOKEN)
    token, _ = bridge.machine_token("mcp", name="metrics-stdio")
    echo = modern_request("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    r = httpx.post(bridge.mcp_url, json=echo, headers=modern_headers(token, echo), timeout=30)
    assert r.status_code == 200 and last_message(r)["result"]["content"][0]["text"] == "hi", r.text
    running = scrape(metrics_url, TOKEN)
    assert value(running, "authgate_stdio_children") >= 1
    crash = modern_request("tools/call", {"name": "crash", "arguments": {}}, request_id=2)
    r = httpx.post(bridge.mcp_url, json=crash, headers=modern_headers(token, crash), timeout=30)
    assert "error" in last_message(r), r.text
    after = scrape(metrics_url, TOKEN)
    assert value(after, "authgate_upstream_latency_seconds_count", transport="stdio") > value(
        before, "authgate_upstream_latency_seconds_count", transport="stdio"
    )
    exited = {"transport": "stdio", "reason": "stdio_server_exited"}
    assert value(after, "authgate_upstream_errors_total", **exited) > value(
        before, "authgate_upstream_errors_total", **exited
    )
    assert value(after, "authgate_oauth_steps_total", step="client_credentials") >= 1


@pytest.mark.requirement(ISSUE13_METRICS_NOT_PUBLIC)
def test_metrics_are_not_on_the_public_listener_unless_configured(
    gateway: tuple[AuthgateServer, str], bridge: AuthgateServer
) -> None:
    server, metrics_url = gateway
    assert httpx.get(server.url + "/metrics", timeout=10).status_code == 404  # only on metrics_listen
    assert httpx.get(metrics_url.replace("/metrics", "/health"), timeout=10).status_code == 404  # only /metrics
    machine, _ = bridge.machine_token("mcp", name="metrics-not-a-scraper")
    with headless.HeadlessUserAgent() as browser:  # signed in (the first user: an admin), with a user's token
        person = _code_flow(bridge, browser)["access_token"]
        assert browser.cookies  # the sign-in cookie goes along
        for headers in (
            {},  # anonymous
            {"Authorization": f"Bearer {machine}"},  # a registered client's access token
            {"Authorization": f"Bearer {person}"},
            {"Authorization": f"Bearer {TOKEN[:-1]}x"},
        ):
            r = browser.http.get(bridge.url + "/metrics", headers=headers)
            assert r.status_code == 401 and "authgate_" not in r.text, (headers, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
    assert (
        "authgate_http_requests_total"
        in httpx.get(bridge.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    )


@pytest.mark.requirement(ISSUE13_METRICS_NOT_PUBLIC)
@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"metrics_on_main": True}, "metrics_on_main"),
        ({"metrics_listen": "0.0.0.0:9464"}, "metrics_listen"),
        ({"metrics_listen": "[::]:9464"}, "metrics_listen"),
        ({"metrics_listen": "metrics.example:9464"}, "metrics_listen"),
        ({"metrics_on_main": True, "metrics_token": "short"}, "metrics_token"),
    ],
)
def test_a_reachable_metrics_endpoint_needs_the_token(settings: dict[str, Any], named: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(data_dir=tmp_path, **settings)
    assert named in str(refused.value)
    assert not load_settings(data_dir=tmp_path).metrics_enabled  # off by default
    assert load_settings(data_dir=tmp_path, metrics_listen="0.0.0.0:9464", metrics_token=TOKEN).metrics_enabled


@pytest.mark.requirement(ISSUE13_METRICS_BOUNDED_LABELS)
def test_random_paths_and_tool_names_add_no_series(gateway: tuple[AuthgateServer, str]) -> None:
    server, metrics_url = gateway
    token, _ = server.machine_token("mcp", name="metrics-labels")
    with httpx.Client(timeout=30) as http:

        def traffic(n: int) -> None:
            for i in range(n):
                junk = secrets.token_urlsafe(12)
                if i % 2:
                    path = ("/", "/mcp/", "/.well-known/", "/token/", "/admin/")[i % 5] + junk
                    r = http.request(("GET", "POST")[i % 3 % 2], server.url + path)
                    assert r.status_code in (404, 405, 401), (path, r.status_code)
                else:
                    body = {
                        "jsonrpc": "2.0",
                        "id": i,
                        "method": "tools/call",
                        "params": {"name": junk, "arguments": {}},
                    }
                    r = http.post(server.mcp_url, json=body, headers={**HEADERS, "Authorization": f"Bearer {token}"})
                    assert r.status_code == 200, r.text

        traffic(20)  # every kind once: the answers' status codes are known series from now on
        before = scrape(metrics_url)
        traffic(1000)
        after = scrape(metrics_url)
    assert set(after) == set(before), set(after) ^ set(before)
    assert value(after, "authgate_http_requests_total", route="other") >= 300


@pytest.mark.requirement(ISSUE13_METRICS_NOT_PUBLIC)
def test_a_busy_metrics_port_is_a_configuration_error_before_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")},
            "AUTHGATE_DATA_DIR": str(tmp_path),
            "AUTHGATE_PORT": str(ports.free_port()),
            "AUTHGATE_METRICS_LISTEN": listen,
        }
        done = subprocess.run(
            [sys.executable, "-m", "authgate", "serve"], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2, done.stderr
    assert f"setting 'metrics_listen': cannot listen on {listen}" in done.stderr
    assert "Traceback" not in done.stderr
