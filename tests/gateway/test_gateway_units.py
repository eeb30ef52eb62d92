"""The gateway's parts in-process: body parsing, mirrored-header rules, session bindings,
header filtering, settings. No sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from authgate.config.settings import load_settings
from authgate.errors import ConfigError, StoreError
from authgate.gateway.errors import HeaderMismatch, InvalidJsonRpcRequest, ParseError
from authgate.gateway.headers import IdentityHeaderNames, UpstreamRequestHeaders, downstream_headers
from authgate.gateway.http.sessions import InMemorySessionBindings, Owner, SessionBindings
from authgate.gateway.jsonrpc import parse_body
from authgate.gateway.request_metadata import MirroredHeaders, check_request_metadata
from authgate.gateway.tool_schemas import ToolSchemas, ToolsListTap
from authgate.guard.identity import Identity
from authgate.store.sql import SqlStore
from authgate.store.sql.sessions import SqlSessionBindings

META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


def _body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# -- jsonrpc ---------------------------------------------------------------------------------


def test_single_messages_parse_and_keep_their_bytes() -> None:
    raw = b'{"jsonrpc": "2.0", "id": "a", "method": "tools/list"}'
    body = parse_body(raw)
    assert body.single is not None and body.single.method == "tools/list" and body.single.id == "a"
    assert body.upstream_bytes() is raw


def test_a_body_parsed_in_front_is_taken_as_it_is() -> None:
    raw = b'{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "t"}}'
    decoded = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "t"}}
    body = parse_body(raw, decoded)
    assert body.single is not None and body.single.obj is decoded and body.upstream_bytes() is raw


@pytest.mark.parametrize(
    "raw, error",
    [
        (b"{", ParseError),
        (b"\xff", ParseError),
        (b"[]", InvalidJsonRpcRequest),
        (b"42", InvalidJsonRpcRequest),
        (b'{"jsonrpc": "2.0", "id": 1}', InvalidJsonRpcRequest),
        (b'{"jsonrpc": "2.0", "id": true, "method": "x"}', InvalidJsonRpcRequest),
        (b'{"jsonrpc": "2.0", "method": "x", "params": 3}', InvalidJsonRpcRequest),
        (b'{"jsonrpc": "2.0", "id": 1, "result": {}, "error": {}}', InvalidJsonRpcRequest),
        (b"[" * 100_000 + b"]" * 100_000, ParseError),  # deeper than Python's json can go: 400, not a crash
    ],
)
def test_bodies_nothing_can_be_done_with(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_body(raw)


def test_a_batch_keeps_good_elements_and_answers_bad_ones() -> None:
    body = parse_body(_body([{"jsonrpc": "2.0", "id": 1, "result": {}}, {"id": 2}, "x"]))
    assert body.is_batch and body.single is None
    assert [m.obj["id"] for m in body.messages] == [1]
    assert [(r["id"], r["error"]["code"]) for r in body.rejected] == [(2, -32600), (None, -32600)]
    assert json.loads(body.upstream_bytes()) == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


# -- mirrored headers ------------------------------------------------------------------------


def _check(obj: Any, headers: dict[str, str], schemas: ToolSchemas | None = None) -> None:
    mirrored = MirroredHeaders.from_scope([(k.lower().encode(), v.encode()) for k, v in headers.items()])
    check_request_metadata(parse_body(_body(obj)), mirrored, schemas or ToolSchemas())


def test_legacy_requests_need_no_mirrored_headers_but_present_ones_must_match() -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}}
    _check(call, {"MCP-Protocol-Version": "2025-06-18"})
    with pytest.raises(HeaderMismatch):
        _check(call, {"Mcp-Method": "tools/list"})
    with pytest.raises(HeaderMismatch):
        _check(call, {"Mcp-Name": "other"})


def test_modern_requests_need_their_headers() -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "_meta": META}}
    full = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
    _check(call, full)
    for missing in full:
        with pytest.raises(HeaderMismatch, match="missing"):
            _check(call, {k: v for k, v in full.items() if k != missing})
    # A notification carries no header rules in 2026-07-28, but must not contradict itself.
    _check({"jsonrpc": "2.0", "method": "notifications/x", "params": {"_meta": META}}, {})


def test_a_base64_name_is_decoded_before_comparing() -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "file:///ü", "_meta": META}}
    headers = {
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "resources/read",
        "Mcp-Name": "=?base64?ZmlsZTovLy/DvA==?=",
    }
    _check(call, headers)
    with pytest.raises(HeaderMismatch, match="malformed"):
        _check(call, {**headers, "Mcp-Name": "=?base64?!!?="})


def test_a_duplicated_routing_header_is_a_mismatch() -> None:
    mirrored = MirroredHeaders.from_scope([(b"mcp-method", b"tools/list"), (b"mcp-method", b"tools/list")])
    with pytest.raises(HeaderMismatch, match="more than once"):
        check_request_metadata(
            parse_body(_body({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})), mirrored, ToolSchemas()
        )


def test_param_headers_follow_the_learned_schema() -> None:
    schemas = ToolSchemas()
    tap = ToolsListTap(schemas, 5)
    listing = {
        "jsonrpc": "2.0",
        "id": 5,
        "result": {
            "tools": [
                {
                    "name": "q",
                    "inputSchema": {"type": "object", "properties": {"n": {"type": "integer", "x-mcp-header": "N"}}},
                },
                {"name": "plain", "inputSchema": {"type": "object"}},
            ]
        },
    }
    tap.feed(b"event: message\r\ndata: " + _body(listing) + b"\r\n\r\n")
    tap.finish("text/event-stream")
    assert schemas.get("q") is not None and schemas.get("plain") is None
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "q", "arguments": {"n": 42}, "_meta": META},
    }
    base = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "q"}
    _check(call, {**base, "Mcp-Param-N": "42"}, schemas)
    _check(call, {**base, "Mcp-Param-N": "42.0"}, schemas)  # integers compare numerically
    for wrong in ({"Mcp-Param-N": "41"}, {}):
        with pytest.raises(HeaderMismatch):
            _check(call, {**base, **wrong}, schemas)


# -- sessions --------------------------------------------------------------------------------


class _TimedBindings:
    """A `SessionBindings` on a test clock; `at(t)` moves the clock to t seconds."""

    def __init__(self, make: Callable[[Callable[[], float]], SessionBindings]) -> None:
        self.now = 0.0
        self.bindings = make(lambda: self.now)

    async def at(self, seconds: float) -> None:
        self.now = seconds
        if isinstance(self.bindings, SqlSessionBindings):
            await self.bindings.renew_leases()  # its renewer runs in real time, every lease_ttl / 3


@pytest.fixture(params=["memory", "sql"])
async def timed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[_TimedBindings]:
    """Each `SessionBindings` implementation with idle_ttl = 10 s (the SQL one on SQLite; its
    contract tests in tests/contract/ also run it on PostgreSQL)."""
    if request.param == "memory":
        yield _TimedBindings(lambda clock: InMemorySessionBindings(idle_ttl=10, clock=clock))
        return
    sql = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}")
    await sql.open()
    timed = _TimedBindings(lambda clock: SqlSessionBindings(sql, idle_ttl=10, lease_ttl=6, clock=clock))
    try:
        yield timed
    finally:
        assert isinstance(timed.bindings, SqlSessionBindings)
        await timed.bindings.close()
        await sql.close()


async def test_bindings_expire_when_idle_but_not_while_a_stream_is_open(timed: _TimedBindings) -> None:
    store = timed.bindings
    alice, bob = Owner("alice", "c1"), Owner("bob", "c1")
    assert await store.owner("s1") is None
    assert await store.bind("s1", alice) == alice
    assert await store.bind("s1", bob) == alice  # the first binding wins
    await store.hold("s1")
    await timed.at(100)
    assert await store.owner("s1") == alice
    await store.release("s1")
    await timed.at(105)
    assert await store.owner("s1") == alice  # used 5 s ago
    await timed.at(116)
    assert await store.owner("s1") is None
    await store.bind("s2", alice)
    await store.drop("s2")
    assert await store.owner("s2") is None


async def test_bindings_are_capped_oldest_idle_first() -> None:
    store = InMemorySessionBindings(max_sessions=3)
    for i in range(3):
        await store.bind(f"s{i}", Owner(str(i), "c"))
    await store.owner("s0")  # s1 is now the least recently used
    await store.bind("s3", Owner("3", "c"))
    assert len(store) == 3 and await store.owner("s1") is None and await store.owner("s0") is not None


# -- headers ---------------------------------------------------------------------------------


def _scope(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("10.0.0.7", 5555),
        "scheme": "https",
    }


def test_upstream_headers_drop_credentials_cookies_forgeries_and_hop_by_hop() -> None:
    identity = Identity(
        subject="sub-1",
        client_id="https://client.example/cimd",
        scopes=("mcp", "x"),
        audience=("https://gw/mcp",),
        expires_at=0,
        username="zoë",
    )
    built = UpstreamRequestHeaders({"X-Api-Key": "k"}, IdentityHeaderNames()).build(
        _scope(
            {
                "Authorization": "Bearer client-token",
                "Cookie": "authgate_session=1",
                "X-Authgate-Subject": "evil",
                "X-Authgate-Anything": "evil",
                "X-Api-Key": "client",
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "1",
                "Keep-Alive": "5",
                "TE": "trailers",
                "Host": "gw",
                "Content-Length": "3",
                "Mcp-Session-Id": "s",
                "Mcp-Param-Region": "eu",
                "Last-Event-ID": "7",
                "User-Agent": "ua",
                "Origin": "https://evil.example",
                "X-Forwarded-For": "6.6.6.6",
            }
        ),
        identity,
    )
    names = [n.lower() for n, _ in built]
    assert not {
        "authorization",
        "cookie",
        "connection",
        "x-hop",
        "keep-alive",
        "te",
        "host",
        "content-length",
        "x-authgate-anything",
        "origin",
    } & set(names)
    got = dict(built)
    assert got["X-Api-Key"] == "k" and names.count("x-api-key") == 1 and names.count("x-forwarded-for") == 1
    assert got["X-Authgate-Subject"] == "sub-1" and got["X-Authgate-Scopes"] == "mcp x"
    assert got["X-Authgate-Username"] == "=?base64?em/Dqw==?="
    assert got["mcp-session-id"] == "s" and got["mcp-param-region"] == "eu" and got["last-event-id"] == "7"
    assert got["X-Forwarded-For"] == "10.0.0.7" and got["X-Forwarded-Proto"] == "https"
    assert got["Accept-Encoding"] == "identity"


def test_downstream_headers_drop_cookies_challenges_and_hop_by_hop() -> None:
    out = dict(
        downstream_headers(
            [
                (b"Set-Cookie", b"authgate_session=x"),
                (b"WWW-Authenticate", b"Bearer"),
                (b"Transfer-Encoding", b"chunked"),
                (b"Content-Length", b"9"),
                (b"Mcp-Session-Id", b"s"),
                (b"X-Accel-Buffering", b"yes"),
            ],
            sse=True,
            keep_length=False,
        )
    )
    assert out == {b"mcp-session-id": b"s", b"x-accel-buffering": b"no"}


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, setting",
    [
        ({"upstream": "ftp://host/mcp"}, "upstream"),
        ({"upstream": "http://user:pw@host/mcp"}, "upstream"),
        ({"upstream": "http://127.0.0.1:8123/mcp", "port": 8123}, "upstream"),
        ({"upstream_headers": '{"Host": "x"}'}, "upstream_headers"),
        ({"upstream_headers": '{"X-Authgate-Subject": "x"}'}, "upstream_headers"),
        ({"upstream_headers": "no colon"}, "upstream_headers"),
        ({"upstream_headers": "Authorization: Basic x", "upstream_bearer_token": "t"}, "upstream_bearer_token"),
    ],
)
def test_upstream_settings_are_validated(overrides: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    assert info.value.setting == setting


def test_upstream_headers_from_the_command_line() -> None:
    assert load_settings(upstream_headers="X-Api-Key: abc").upstream_headers == {"X-Api-Key": "abc"}
    assert load_settings(upstream_headers='{"A": "1", "B": "2"}').upstream_headers == {"A": "1", "B": "2"}


# -- the session store failing ----------------------------------------------------------------


class _BrokenBindings(InMemorySessionBindings):
    async def owner(self, session_id: str) -> Owner | None:
        raise StoreError("database error: connection refused")


async def test_a_session_store_that_cannot_answer_gives_503_not_someone_elses_session() -> None:
    import httpx

    from authgate.gateway.http.proxy import HttpUpstreamProxy

    proxy = HttpUpstreamProxy("http://127.0.0.1:9/mcp", sessions=_BrokenBindings())
    body = {"jsonrpc": "2.0", "id": 5, "method": "tools/list"}
    headers = {"Mcp-Session-Id": "abc", "Accept": "application/json, text/event-stream"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://gw") as http:
            r = await http.post("/mcp", json=body, headers=headers)
    finally:
        await proxy.close()
    assert r.status_code == 503
    assert r.json()["error"]["data"]["reason"] == "session_store_unavailable" and r.json()["id"] == 5
