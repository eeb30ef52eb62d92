"""One real Keycloak for the whole test session (issue 17), with the realms of realms/ imported.

`keycloak` (session scope) fetches the distribution when not cached (support.keycloak), starts it
in dev mode with the newest supported JDK, prints the Keycloak and Java versions and the start time
in the test output, and imports every realms/*.json. It runs with `--features=cimd` and trusts the
test CA of a CIMD stand-in (authgate.doctor.standin: the pinned ChatGPT / Claude documents over
HTTPS on 127.0.0.1), which the session also serves. The MCP URL the realms' audience mappers name
is fixed for the session (`mcp_port` here overrides tests/idp/conftest.py's), so each test's
authgate listens on it in turn.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from authgate.doctor.standin import make_test_ca, serve_standin
from support import keycloak as kc
from support.keycloak import KeycloakSession
from support.needs import unavailable
from support.ports import free_port

REALMS = Path(__file__).parent / "realms"
FEATURES = ("cimd",)  # experimental in 26.7: Client ID Metadata Documents (realms/mcp.json's client policy)


@pytest.fixture(scope="session")
def keycloak(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeycloakSession]:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        """To the test output itself, not to the test's captured output (CI runs with -ra)."""
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.write_line(line)

    mcp_port = free_port()
    values = {
        "MCP_URL": f"http://127.0.0.1:{mcp_port}/mcp",
        "USER_PASSWORD": "pw-" + secrets.token_urlsafe(12),
        "CHECKER_SECRET": "checker-" + secrets.token_urlsafe(24),
        "PROXY_SECRET": "proxy-" + secrets.token_urlsafe(24),
        "PROXY_CALLBACK": f"http://127.0.0.1:{mcp_port}/upstream/callback",
    }
    try:
        started = time.monotonic()
        home = kc.fetch(log=say)
        fetched = time.monotonic() - started
        java_home, java_line = kc.pick_java()
        workdir = tmp_path_factory.mktemp("keycloak")
        ca = make_test_ca(workdir / "test-ca")  # the CIMD stand-in's; Keycloak fetches documents over TLS
        server = kc.Keycloak(
            home, java_home, workdir, free_port(), free_port(), FEATURES, (f"--truststore-paths={ca.ca_file}",)
        )
        server.start()
    except kc.KeycloakUnavailable as exc:
        unavailable(str(exc))
    try:
        started = time.monotonic()
        for path in sorted(REALMS.glob("*.json")):
            server.import_realm(path, values)
        say(
            f"Keycloak {kc.VERSION} on {java_line} ({java_home}); dist ready in {fetched:.0f} s, "
            f"started in {server.started_in:.0f} s, realms imported in {time.monotonic() - started:.0f} s"
        )
        with serve_standin(ca) as (standin, _):
            yield KeycloakSession(server, mcp_port, values, standin, str(ca.ca_file))
    finally:
        server.stop()


@pytest.fixture
def mcp_port(keycloak: KeycloakSession) -> int:
    """authgate's port: the one the realms' audience mappers name."""
    return keycloak.mcp_port
