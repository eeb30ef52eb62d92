"""The MCP Inspector CLI through authgate in external mode, Keycloak as the authorization server
(issue 17, item 2): MCP Inspector 2.12.0 (`tests/node`) in `--cli` mode gets the 401 from
`authgate serve`, follows the PRM to the realm, registers there by DCR (the realm's Trusted Hosts
lists 127.0.0.1 and github.com, its `client_uri`), opens Keycloak's authorization URL in "a
browser" — headless Chromium (chromium_agent.py as `$BROWSER`) signing in as alice on Keycloak's
login page and granting its consent page — receives the code on its own loopback callback,
redeems it at Keycloak and calls `whoami` through authgate.

The Inspector's in-browser mode is blocked by Keycloak's CORS (the preflight on the metadata does
not allow `MCP-Protocol-Version`: test_doctor_keycloak.py); the CLI runs in Node, which sends no
preflight, so the same realm serves it. The test shows both on the same Keycloak.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.inspector import DESKTOP_VARS, INSPECTOR, run_inspector, whoami_of
from support.keycloak import KeycloakSession, external_gate
from support.keycloak_login import require_chromium
from support.needs import require_node_files
from support.ports import free_port

pytestmark = [pytest.mark.keycloak, pytest.mark.browser, pytest.mark.node]

HERE = Path(__file__).resolve().parent
CLI_TIMEOUT = 150.0
INSPECTOR_ORIGIN = "http://localhost:6274"  # where the Inspector's web UI runs


@pytest.fixture
def gate(keycloak: KeycloakSession, tmp_path: Path) -> Iterator[AuthgateServer]:
    """`authgate serve` in external mode on the session's MCP URL (the realm's audience)."""
    require_node_files(INSPECTOR)
    require_chromium()
    server = external_gate(keycloak, tmp_path / "gate")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _agent_done(agent_log: Path) -> str:
    """The browser agent's log once it has written its last line: it writes it after Chromium
    delivered the callback, which the Inspector may have used (and exited) first."""
    deadline = time.monotonic() + 20
    while "callback reached" not in (text := agent_log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return text


@pytest.mark.requirement(req.ISSUE17_INSPECTOR_CLI_REAL_KEYCLOAK)
@pytest.mark.requirement(req.RFC9207_ISS)
def test_inspector_cli_registers_at_keycloak_signs_in_in_chromium_and_calls_whoami(
    keycloak: KeycloakSession, gate: AuthgateServer, tmp_path: Path
) -> None:
    home, agent_log = tmp_path / "home", tmp_path / "agent.log"
    home.mkdir()
    browser = tmp_path / "browser.sh"  # xdg-open runs $BROWSER URL; the path must hold no ':' or space
    browser.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{HERE / 'chromium_agent.py'}' \"$@\"\n")
    browser.chmod(0o755)
    callback = f"http://127.0.0.1:{free_port()}/oauth/callback"
    env = {k: v for k, v in os.environ.items() if k not in DESKTOP_VARS}
    env.update(
        {
            "HOME": str(home),  # the Inspector keeps registrations and tokens there
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "MCP_INSPECTOR_SECRET_STORE": "file",
            "MCP_AUTO_OPEN_ENABLED": "true",
            "BROWSER": str(browser),
            "NO_COLOR": "1",
            "KEYCLOAK_AGENT_USER": "alice",
            "KEYCLOAK_AGENT_PASSWORD": keycloak.user_password,
            "KEYCLOAK_AGENT_CALLBACK": callback,
            "KEYCLOAK_AGENT_LOG": str(agent_log),
        }
    )
    args = ["--method", "tools/call", "--tool-name", "whoami", "--transport", "http", "--server-url", gate.mcp_url]
    args += ["--callback-url", callback, "--format", "json"]

    def report(done: subprocess.CompletedProcess[str]) -> str:
        agent = agent_log.read_text() if agent_log.exists() else "(the browser never ran)"
        return f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{agent}\n{gate.logs()[-3000:]}"

    done = run_inspector(args, env, tmp_path, CLI_TIMEOUT)
    assert done.returncode == 0, report(done)
    who = whoami_of(done.stdout)
    assert who["authenticated"] is True and who["username"] == "alice" and "mcp" in who["scopes"]

    # Registered at the realm (Keycloak's client id, the Inspector's github.com client_uri), signed
    # in on Keycloak's login and consent pages, the code (and RFC 9207 iss) at the Inspector.
    with keycloak.server.admin() as admin:
        [client] = admin.get("/mcp/clients", params={"clientId": who["client_id"]}).json()
        assert client["name"] == "MCP Inspector" and client["redirectUris"] == [callback]
        assert client["baseUrl"].startswith("https://github.com/")
        agent = _agent_done(agent_log)
        assert f"opening {keycloak.issuer()}/protocol/openid-connect/auth?" in agent, agent
        assert "Sign in to mcp </realms/mcp/protocol/openid-connect/auth>" in agent, agent
        assert f"callback reached with ['code', 'iss', 'session_state', 'state'] iss={keycloak.issuer()}" in agent

        # Second run, same HOME: the stored Keycloak token is enough, no browser.
        env["BROWSER"] = "/bin/false"
        again = run_inspector([*args, "--stored-auth-only"], env, tmp_path, CLI_TIMEOUT)
        assert again.returncode == 0, report(again)
        assert whoami_of(again.stdout)["client_id"] == who["client_id"]
        assert admin.delete(f"/mcp/clients/{client['id']}").status_code == 204  # no orphan (seed 003 §4.1)

    # What blocks the Inspector in a browser does not reach the CLI: Keycloak's preflight on its
    # metadata leaves out MCP-Protocol-Version, and Node sends no preflight.
    preflight = httpx.options(
        f"{keycloak.server.url}/.well-known/oauth-authorization-server/realms/mcp",
        headers={
            "Origin": INSPECTOR_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "mcp-protocol-version",
        },
        timeout=15.0,
    )
    allowed = preflight.headers.get("access-control-allow-headers", "").lower()
    assert "authorization" in allowed and "mcp-protocol-version" not in allowed, preflight.headers
