"""Fixtures for the gateway tests: real upstream MCP servers, authgate with `--upstream`.

* `serve_in_thread(app, port)` runs an ASGI app under uvicorn on 127.0.0.1 in a daemon
  thread *with its lifespan* (the SDK's session manager needs it);
* `start_gateway(tmp, upstream_url, **env)` runs `python -m authgate serve` as a subprocess
  (tests/integration/conftest.py's `AuthgateServer`, reused) with `AUTHGATE_UPSTREAM` set;
* `service_token(server, name)` makes a machine client with `authgate clients add` (open
  registration makes none) and gets its `client_credentials` token (subject = that client).

Every wait is bounded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import authgate_server as integration
from support import headless

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0


AuthgateServer = integration.AuthgateServer


def serve_in_thread(app: Any, port: int | None = None) -> contextlib.AbstractContextManager[str]:
    """Serve `app` (lifespan on) on 127.0.0.1; yield its base URL; stop it on exit."""
    return integration.serve_asgi_in_thread(app, port, lifespan="on")


def start_gateway(workdir: Path, upstream_url: str, **env: str) -> Any:
    server = AuthgateServer(
        workdir, extra_env={"AUTHGATE_UPSTREAM": upstream_url, "AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000", **env}
    )
    server.add_user()
    server.start()
    return server


def service_token(server: Any, name: str = "gateway-test-service") -> str:
    """An access token for a new operator-made machine client (client_credentials; subject = client)."""
    token, _ = server.machine_token("mcp", name=name, scope="mcp")
    return str(token)


@pytest.fixture(scope="module")
def module_stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """Attach the logs of the authgate processes a failed test used."""
    report = yield
    if report.failed:
        for name in ("gateway", "stateful_gateway", "stateless_gateway", "gateways"):
            server = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            for srv in server.values() if isinstance(server, dict) else [server] if server else []:
                if hasattr(srv, "logs"):
                    report.sections.append((f"authgate logs ({srv.url})", srv.logs()))
    return report


CALLBACK = "http://127.0.0.1:53682/callback"


def user_token(server: Any) -> str:
    """An access token for the server's user (alice): registration, PKCE authorization code
    flow through the headless user agent (tests/support/headless.py), redemption."""
    import base64
    import hashlib
    import secrets
    from urllib.parse import urlencode

    r = httpx.post(
        server.endpoint("register"),
        json={
            "client_name": "gateway-test-user-client",
            "redirect_uris": [CALLBACK],
            "token_endpoint_auth_method": "none",
        },
        timeout=10,
    )
    assert r.status_code == 201, r.text
    client_id = r.json()["client_id"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = (
        server.endpoint("authorize")
        + "?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": CALLBACK,
                "state": "s",
                "scope": "mcp",
                "resource": server.mcp_url,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
    )
    answer = headless.authorize(url, server.username, server.password)
    assert answer.code, answer
    r = httpx.post(
        server.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": answer.code,
            "code_verifier": verifier,
            "redirect_uri": CALLBACK,
            "client_id": client_id,
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])
