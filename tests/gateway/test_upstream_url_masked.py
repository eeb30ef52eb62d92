"""Upstream URLs are printed with their secrets masked (authgate/masking.py, issue 19): a
password is refused at start-up without being echoed, and a query secret (`?key=…`) never
reaches the start-up output, the log, a client's JSON-RPC error or `/health/ready`, which
show `key=***` instead. The same for proxy-mode and external IdP URLs refused at start."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from authgate.config.settings import load_settings
from authgate.errors import ConfigError
from authgate.gateway import proxy_from_settings
from support import requirements as req
from support.authgate_server import CLI_TIMEOUT
from support.ports import free_port

from .conftest import start_gateway
from .mcp_wire import modern_headers, modern_request

SECRET = "s3cret-Zq81"


@pytest.mark.requirement(req.ISSUE19_UPSTREAM_URL_MASKED)
@pytest.mark.parametrize(
    "settings",
    [
        {"upstream": f"https://gw:{SECRET}@mcp.example.com/mcp"},
        {"upstream": f"ftp://gw:{SECRET}@mcp.example.com/mcp"},
        {"auth_mode": "external", "issuer": f"https://u:{SECRET}@idp.example.com/"},
        {"auth_mode": "external", "issuer": f"http://idp.example.com/?token={SECRET}"},
        {
            "auth_mode": "proxy",
            "idp_preset": "oauth2",
            "idp_client_id": "c",
            "idp_client_secret": "x",
            "idp_authorize_url": f"https://u:{SECRET}@idp.example.com/authorize",
            "idp_token_url": f"https://idp.example.com/token?key={SECRET}",
            "idp_userinfo_url": "https://idp.example.com/userinfo",
        },
        {"auth_mode": "external", "issuer": "https://idp.example.com/", "introspection_endpoint": f"x://u:{SECRET}@h"},
    ],
)
def test_a_refused_url_is_named_without_its_secret(settings: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, data_dir=tmp_path, **settings)
    assert SECRET not in str(refused.value)


@pytest.mark.requirement(req.ISSUE19_UPSTREAM_URL_MASKED)
def test_serve_refuses_an_upstream_password_without_printing_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "authgate", "serve", "--upstream", f"ftp://gw:{SECRET}@mcp.example.com/mcp"],
        env={"AUTHGATE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert done.returncode != 0 and "configuration error" in done.stderr
    assert SECRET not in done.stdout + done.stderr and "gw:***@mcp.example.com" in done.stderr


@pytest.mark.requirement(req.ISSUE19_UPSTREAM_URL_MASKED)
async def test_an_upstream_query_secret_never_reaches_output_logs_or_errors(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: the client and /health/ready get "unreachable"
    upstream = f"http://127.0.0.1:{port}/mcp?key={SECRET}&region=eu"
    gateway = start_gateway(tmp_path, upstream)
    try:
        token, _ = gateway.machine_token("mcp", name="masked-url", scope="mcp")
        body = modern_request(4, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
        async with httpx.AsyncClient(timeout=15) as http:
            r = await http.post(gateway.mcp_url, json=body, headers=modern_headers(token, "tools/call", "echo"))
            assert r.status_code == 502, r.text
            assert f"127.0.0.1:{port}/mcp?key=***&region=***" in r.json()["error"]["message"]
            assert SECRET not in r.text
            ready = await http.get(gateway.url + "/health/ready")
            assert ready.status_code == 503 and SECRET not in ready.text and "key=***" in ready.text
    finally:
        gateway.stop()
    logs = gateway.logs()  # the start-up lines, the request log, the gateway's warnings
    assert "key=***" in logs and SECRET not in logs


@pytest.mark.requirement(req.ISSUE19_UPSTREAM_URL_MASKED)
def test_the_plain_http_warning_masks_the_query(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(None, data_dir=tmp_path, upstream=f"http://mcp.example.com/mcp?token={SECRET}")
    with caplog.at_level(logging.WARNING, logger="authgate.gateway"):
        proxy_from_settings(settings)  # builds the proxy; nothing is sent
    assert "plain http on a public address" in caplog.text and "token=***" in caplog.text
    assert SECRET not in caplog.text
