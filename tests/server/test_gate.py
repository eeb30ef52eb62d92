"""The gate in front of the MCP endpoint (`server/gate.py`), over ASGI with no server: a request
through it — log, checks, policy, audit, the drain's flight (the exchange itself) and the app — leaves no reference
cycle behind, so what it allocated goes by reference count as the request ends and the
garbage collector never has to find it (cycles made every request pay for collections:
docs/benchmarks.md)."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authgate.config.settings import load_settings
from authgate.gateway.drain import Drain
from authgate.gateway.streams import StreamLimit
from authgate.guard.bearer import BearerCheck
from authgate.guard.identity import Identity
from authgate.guard.origin import OriginCheck
from authgate.guard.sdk_user import SdkUsers
from authgate.policy.clients import ClientRecognizer
from authgate.policy.enforcer import PolicyEnforcer
from authgate.policy.model import Policy
from authgate.server.gate import McpGate

PRM = "http://testserver/.well-known/oauth-protected-resource/mcp"
CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}}).encode()
LIST = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).encode()


class Verifier:
    async def verify(self, token: str) -> Identity:
        return Identity("sub-1", "client-1", ("mcp",), ("http://testserver/mcp",), 2**40, "alice")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    body = b'{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}'
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def gate(tmp_path: Path) -> McpGate:
    settings = load_settings(None, data_dir=tmp_path)
    policy = Policy.from_settings(settings)
    return McpGate(
        app,
        origins=OriginCheck(public_host="testserver", allowed_origins=["http://testserver"]),
        bearer=BearerCheck(Verifier(), resource_metadata=PRM, scopes=("mcp",)),
        enforcer=PolicyEnforcer(policy, resource_metadata=PRM, clients=ClientRecognizer([]), audit=None),
        streams=StreamLimit(app, per_caller=4),
        max_body=settings.mcp_max_body_bytes,
        sdk_users=SdkUsers(),
        drain=Drain(),
    )


async def _call(gate: McpGate, body: bytes, *headers: tuple[bytes, bytes]) -> int:
    sent: list[dict[str, Any]] = []
    fed = False

    async def receive() -> dict[str, Any]:
        nonlocal fed
        if fed:
            return {"type": "http.disconnect"}
        fed = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1234),
    }
    await gate(scope, receive, send)
    return int(sent[0]["status"])


@pytest.fixture
def garbage() -> Iterator[list[Any]]:
    """What the collector finds unreachable from here on (kept, not freed, to be looked at)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.garbage.clear()
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


TOKEN = (b"authorization", b"Bearer t")
REQUESTS = [(CALL, [TOKEN]), (LIST, [TOKEN]), (CALL, [])]  # a call, a list rewritten on the way out, a 401


@pytest.fixture
async def warm(gate: McpGate) -> McpGate:
    """Every path taken once: what the libraries build on first use is not the requests' garbage."""
    for body, headers in REQUESTS:
        await _call(gate, body, *headers)
    return gate


async def test_allowed_and_refused_requests_leave_no_reference_cycle(warm: McpGate, garbage: list[Any]) -> None:
    statuses = [await _call(warm, body, *headers) for body, headers in REQUESTS * 5]
    assert statuses == [200, 200, 401] * 5
    gc.collect()
    assert not garbage, sorted({type(o).__qualname__ for o in garbage})
