"""Library mode: `authgate.protect()` around an in-process `mcp` SDK MCPServer app, served
by a real uvicorn; the tool sees the caller through `current_identity` and the SDK's own
`request.user`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

import authgate
from support.authgate_server import add_machine_client, serve_asgi_in_thread
from support.ports import free_port

HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-06-18",
}


def notes_app() -> object:
    mcp = MCPServer("notes")

    @mcp.tool()
    def caller(ctx: Context) -> str:
        identity = authgate.current_identity(ctx)
        request = ctx.request_context.request
        sdk_user = getattr(request, "user", None) if request is not None else None
        return json.dumps(
            {
                "subject": identity.subject if identity else None,
                "client_id": identity.client_id if identity else None,
                "sdk_client_id": getattr(sdk_user, "username", None),
            }
        )

    return mcp.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


@pytest.fixture
def protected(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    app = authgate.protect(notes_app(), public_url=f"http://127.0.0.1:{port}", data_dir=tmp_path)
    with serve_asgi_in_thread(app, port, lifespan="on") as base:
        yield base, tmp_path


def test_protect_wraps_an_sdk_app_with_the_whole_as_and_guard(protected: tuple[str, Path]) -> None:
    base, data_dir = protected
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "caller", "arguments": {}}}
    r = httpx.post(f"{base}/mcp", headers=HEADERS, json=call)
    assert r.status_code == 401 and "resource_metadata=" in r.headers["www-authenticate"]
    assert httpx.get(f"{base}/.well-known/oauth-protected-resource/mcp").json()["resource"] == f"{base}/mcp"
    client_id, secret = add_machine_client("library-test", "mcp", "--data-dir", str(data_dir))
    token = httpx.post(
        f"{base}/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    ).json()["access_token"]
    r = httpx.post(f"{base}/mcp", headers={**HEADERS, "Authorization": f"Bearer {token}"}, json=call)
    assert r.status_code == 200, r.text
    seen = json.loads(r.json()["result"]["content"][0]["text"])
    assert seen == {"subject": client_id, "client_id": client_id, "sdk_client_id": client_id}
