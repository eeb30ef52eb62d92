"""The URL elicitation's wire shapes at each revision, authgate's sealed requestState and its
refusals, the signal, and the answer tap (connections/elicitation.py, request_state.py,
asks.py, server/elicitations.py). The real broker and the whole round trip through real
processes are in test_connect_elicitation.py; here a stand-in broker keeps tokens in a dict."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from authgate.connections.asks import RERUN, Call, ConnectionAsks, connection_header
from authgate.connections.elicitation import (
    SIGNAL_CODE,
    how_to_ask,
    input_key,
    read_signal,
    request_version,
    signal_error,
)
from authgate.connections.request_state import MAX_STATE_CHARS, PREFIX, RequestStates
from authgate.errors import ConnectionRequired
from authgate.gateway.body import PARSED_BODY_KEY
from authgate.guard.identity import CONNECTION_BROKER_KEY, CONNECTION_HEADERS_KEY, SCOPE_KEY, Identity
from authgate.server.elicitations import ElicitationLayer, SessionCapabilities, SignalTap
from support import requirements as req

URL_CAPS = {"elicitation": {"form": {}, "url": {}}}
FORM_ONLY = {"elicitation": {}}


class StandInBroker:
    """The broker's contract as the asks use it: a token per (user, provider), else a link."""

    def __init__(self) -> None:
        self.providers: Mapping[str, Any] = {"github": object(), "drive": object()}
        self.tokens: dict[tuple[str, str], str] = {}
        self.links = 0
        self.revoked: list[tuple[str, str]] = []

    async def token(self, user_id: str, provider: str) -> str | None:
        return self.tokens.get((user_id, provider))

    async def require(self, user_id: str, client_id: str, provider: str, scopes: tuple[str, ...] = ()) -> str:
        if token := self.tokens.get((user_id, provider)):
            return token
        self.links += 1
        link = f"https://authgate.example/connect/e{self.links}"
        raise ConnectionRequired(provider, link, f"e{self.links}", scopes)

    async def revoke(self, user_id: str, provider: str) -> bool:
        self.revoked.append((user_id, provider))
        return self.tokens.pop((user_id, provider), None) is not None


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def _asks(tools: dict[str, str] | None = None, headers: bool = False) -> tuple[ConnectionAsks, StandInBroker, Clock]:
    broker, clock = StandInBroker(), Clock()
    return ConnectionAsks(broker, RequestStates(b"s" * 32, 900, clock), tools, headers=headers), broker, clock


def _call(params: dict[str, Any], version: str = "2026-07-28", caps: Any = URL_CAPS, **who: str) -> Call:
    params = {"name": "create_issue", "arguments": {"title": "x"}, **params}
    return Call(7, params, version, caps, who.get("subject", "alice"), who.get("client_id", "c1"))


def _required(n: int = 1) -> ConnectionRequired:
    return ConnectionRequired("github", f"https://authgate.example/connect/e{n}", f"e{n}", ())


def _run(coro: Any) -> Any:
    async def main() -> Any:
        return await coro

    return anyio.run(main)


# -- the answer at each revision ---------------------------------------------------------------
@pytest.mark.requirement(req.MCP_2026_07_28_MRTR)
def test_2026_07_28_with_url_capability_gets_an_input_required_result() -> None:
    asks, _, _ = _asks()
    answer = asks.ask(_call({}), _required(), carry={})
    result = answer["result"]
    assert answer["id"] == 7 and result["resultType"] == "input_required"
    request = result["inputRequests"][input_key("github")]
    assert request["method"] == "elicitation/create"
    assert request["params"]["mode"] == "url" and request["params"]["url"] == "https://authgate.example/connect/e1"
    assert "elicitationId" not in request["params"]  # removed in 2026-07-28 (changelog, minor change 11)
    assert request["params"]["message"]
    assert result["requestState"].startswith(PREFIX)


@pytest.mark.requirement(req.MCP_2025_11_25_URL_ELICITATION_REQUIRED)
def test_2025_11_25_with_url_capability_gets_minus_32042_with_the_elicitation() -> None:
    asks, _, _ = _asks()
    answer = asks.ask(_call({}, version="2025-11-25"), _required(), carry={})
    error = answer["error"]
    assert error["code"] == -32042
    [elicitation] = error["data"]["elicitations"]
    assert elicitation == {
        "mode": "url",
        "elicitationId": "e1",
        "url": "https://authgate.example/connect/e1",
        "message": elicitation["message"],
    }


@pytest.mark.requirement(req.MCP_2026_07_28_ELICITATION_MODE_DECLARED)
@pytest.mark.parametrize(
    ("version", "caps"),
    [
        ("2026-07-28", FORM_ONLY),
        ("2026-07-28", {}),
        ("2025-11-25", None),
        ("2025-06-18", URL_CAPS),
        ("2025-03-26", URL_CAPS),
    ],
)
def test_no_url_capability_or_an_older_revision_gets_a_tool_error_naming_the_page(version: str, caps: Any) -> None:
    asks, _, _ = _asks()
    answer = asks.ask(_call({}, version=version, caps=caps), _required(), carry={})
    result = answer["result"]
    assert result["isError"] is True and "inputRequests" not in result
    assert "https://authgate.example/connect/e1" in result["content"][0]["text"]
    assert ("resultType" in result) == (version >= "2026-07-28")


def test_how_to_ask_and_the_request_version() -> None:
    assert how_to_ask("2026-07-28", URL_CAPS) == "input_required"
    assert how_to_ask("2027-01-01", URL_CAPS) == "input_required"
    assert how_to_ask("2025-11-25", URL_CAPS) == "url_error"
    assert how_to_ask("2025-11-25", {"elicitation": {"url": True}}) == "tool_error"  # url must be an object
    meta = {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}
    assert request_version(meta, "2025-11-25") == "2026-07-28"
    assert request_version({}, "2025-11-25") == "2025-11-25"
    assert request_version({}, None) == "2025-03-26"
    assert request_version({}, "garbage") == "2025-03-26"


# -- the signal --------------------------------------------------------------------------------
def test_the_signal_is_read_only_in_its_one_shape() -> None:
    good = signal_error("github", ("repo",))
    assert good["code"] == SIGNAL_CODE == -32012
    signal = read_signal(good)
    assert signal is not None and signal.provider == "github" and signal.scopes == ("repo",)
    assert read_signal({**good, "code": -32603}) is None
    assert read_signal({"code": SIGNAL_CODE, "data": {"connectionRequired": {"provider": "GitHub!"}}}) is None
    assert (
        read_signal({"code": SIGNAL_CODE, "data": {"connectionRequired": {"provider": "g", "scopes": "repo"}}}) is None
    )
    assert (
        read_signal({"code": SIGNAL_CODE, "data": {"connectionRequired": {"provider": "g", "scopes": ["a b"]}}}) is None
    )
    assert (
        read_signal({"code": SIGNAL_CODE, "data": {"connectionRequired": {"provider": "g", "scopes": ["s"] * 51}}})
        is None
    )
    # a URL in the signal is never used: the link is always authgate's own
    sneaky = {"code": SIGNAL_CODE, "data": {"connectionRequired": {"provider": "github", "url": "https://evil"}}}
    asks, _, _ = _asks()
    answer = _run(asks.after(_call({}), read_signal(sneaky)))  # type: ignore[arg-type]
    assert "evil" not in json.dumps(answer)


# -- the retry (2026-07-28) --------------------------------------------------------------------
def _first_state(asks: ConnectionAsks, **who: str) -> str:
    answer = _run(asks.after(_call({}, **who), read_signal(signal_error("github"))))  # type: ignore[arg-type]
    state: str = answer["result"]["requestState"]
    return state


def _retry(state: str, action: str = "accept", **extra: Any) -> dict[str, Any]:
    return {"requestState": state, "inputResponses": {input_key("github"): {"action": action}}, **extra}


@pytest.mark.requirement(req.MCP_2026_07_28_MRTR)
def test_a_retry_before_the_connection_exists_is_asked_again_and_after_it_goes_on_without_authgates_state() -> None:
    asks, broker, _ = _asks()
    state = _first_state(asks)
    again = _run(asks.before(_call(_retry(state))))
    assert again.answer is not None and again.answer["result"]["resultType"] == "input_required"
    assert again.answer["result"]["requestState"] != state
    broker.tokens[("alice", "github")] = "gh-token"
    served = _run(asks.before(_call(_retry(again.answer["result"]["requestState"]))))
    assert served.answer is None and served.params is not None
    assert "requestState" not in served.params and "inputResponses" not in served.params
    assert served.params["arguments"] == {"title": "x"}


@pytest.mark.requirement(req.MCP_2026_07_28_MRTR_STATE_BOUND)
def test_refused_request_states() -> None:
    asks, broker, clock = _asks()
    state = _first_state(asks)
    broker.tokens[("alice", "github")] = "gh-token"

    def refused(params: dict[str, Any], **who: str) -> str:
        before = _run(asks.before(_call(params, **who)))
        assert before.answer is not None and before.answer["error"]["code"] == -32602, before
        return str(before.answer["error"]["message"])

    forged = state[:-6] + ("AAAAAA" if not state.endswith("AAAAAA") else "BBBBBB")
    assert "not one authgate made" in refused(_retry(forged))
    assert "not one authgate made" in refused(_retry(PREFIX + "x" * (MAX_STATE_CHARS + 1)))
    assert "another user or client" in refused(_retry(state), subject="mallory")
    assert "another user or client" in refused(_retry(state), client_id="c2")
    assert "different request" in refused({**_retry(state), "name": "delete_repo"})
    assert "different request" in refused({**_retry(state), "arguments": {"title": "y"}})
    big = {input_key("github"): {"action": "accept"}, "pad": "x" * 70_000}
    assert "larger than" in refused({"requestState": state, "inputResponses": big})
    assert "must be an object" in refused({"requestState": state, "inputResponses": ["x"]})
    served = _run(asks.before(_call(_retry(state))))
    assert served.answer is None  # the right person, client and request: served once
    assert "already used" in refused(_retry(state))
    later = _first_state(asks)
    clock.now += 901
    assert "expired" in refused(_retry(later))


@pytest.mark.requirement(req.MCP_2026_07_28_MRTR_STATE_UNTRUSTED)
def test_an_upstreams_own_request_state_passes_untouched_and_is_carried_through_authgates() -> None:
    asks, broker, _ = _asks()
    theirs = {
        "requestState": "upstream-opaque",
        "inputResponses": {"user_name": {"action": "accept", "content": {"n": 1}}},
    }
    untouched = _run(asks.before(_call(theirs)))
    assert untouched.answer is None and untouched.params is None  # never opened, never changed
    # the upstream then signals: authgate's state carries the upstream's, which comes back untouched
    answer = _run(asks.after(_call(theirs), read_signal(signal_error("github"))))  # type: ignore[arg-type]
    assert answer is not None
    ours = answer["result"]["requestState"]
    assert "upstream-opaque" not in ours  # sealed, not readable
    broker.tokens[("alice", "github")] = "gh-token"
    served = _run(asks.before(_call(_retry(ours))))
    assert served.params is not None
    assert served.params["requestState"] == "upstream-opaque"
    assert served.params["inputResponses"] == theirs["inputResponses"]


def test_a_declined_connection_ends_the_call_as_a_tool_error() -> None:
    asks, _, _ = _asks()
    before = _run(asks.before(_call(_retry(_first_state(asks), action="decline"))))
    assert before.answer is not None and before.answer["result"]["isError"] is True


# -- configured tools (gateway) and the signal after a call -------------------------------------
def test_a_configured_tool_sends_the_token_in_the_providers_header_or_asks() -> None:
    asks, broker, _ = _asks({"create_issue": "github"}, headers=True)
    asked = _run(asks.before(_call({}, version="2025-11-25")))
    assert asked.answer is not None and asked.answer["error"]["code"] == -32042
    broker.tokens[("alice", "github")] = "gh-token"
    sent = _run(asks.before(_call({})))
    assert sent.answer is None and sent.headers == [(connection_header("github"), "gh-token")]
    assert connection_header("github").lower().startswith("x-authgate-")  # a client's copy is always dropped
    other = _run(asks.before(_call({"name": "search"})))
    assert other.answer is None and other.headers == []


def test_a_retry_for_the_protected_upstream_sends_its_token_in_no_connection_header() -> None:
    # the upstream's own token travels in Authorization (upstream_oauth.py); a resumed retry of
    # its link must not also put it in X-Authgate-Connection-upstream
    asks, broker, _ = _asks(headers=True)
    broker.providers = {**broker.providers, "upstream": object()}
    required = ConnectionRequired("upstream", "https://authgate.example/connect/u1", "u1", ())
    answer = asks.ask(_call({}), required, carry=_call({}).params)
    state = answer["result"]["requestState"]
    broker.tokens[("alice", "upstream")] = "remote-token"
    retry = {"requestState": state, "inputResponses": {input_key("upstream"): {"action": "accept"}}}
    served = _run(asks.before(_call(retry)))
    assert served.answer is None and served.headers == []


def test_a_signal_for_an_unknown_provider_goes_back_as_it_came_and_a_refused_token_is_dropped() -> None:
    asks, broker, _ = _asks()
    assert _run(asks.after(_call({}), read_signal(signal_error("jira")))) is None  # type: ignore[arg-type]
    broker.tokens[("alice", "github")] = "dead-token"
    answer = _run(asks.after(_call({}), read_signal(signal_error("github"))))  # type: ignore[arg-type]
    assert broker.revoked == [("alice", "github")]
    assert answer is not None and answer["result"]["resultType"] == "input_required"


def test_gateway_signal_when_connected_but_not_sent_reruns_and_the_tool_is_remembered() -> None:
    asks, broker, _ = _asks(headers=True)
    broker.tokens[("alice", "github")] = "gh-token"
    again = _run(asks.after(_call({}), read_signal(signal_error("github")), None, False))  # type: ignore[arg-type]
    assert again is RERUN and broker.revoked == []
    later = _run(asks.before(_call({})))  # the upstream said so once: later calls carry the token
    assert later.headers == [(connection_header("github"), "gh-token")]


# -- the answer tap -------------------------------------------------------------------------------
def _tap_run(start_headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[list[dict[str, Any]], bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def rewrite(error: dict[str, Any], held: bool) -> dict[str, Any] | None:
        return {"jsonrpc": "2.0", "id": 7, "result": {"rewritten": error["code"]}} if read_signal(error) else None

    async def main() -> None:
        tap = SignalTap(send, 7, rewrite)
        await tap({"type": "http.response.start", "status": 200, "headers": start_headers})
        for i, chunk in enumerate(chunks):
            await tap({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})

    anyio.run(main)
    return sent, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_the_tap_rewrites_the_signal_in_a_json_answer_with_a_new_length() -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "error": signal_error("github")}).encode()
    sent, out = _tap_run([(b"content-type", b"application/json"), (b"content-length", b"1")], [body[:10], body[10:]])
    assert json.loads(out)["result"] == {"rewritten": SIGNAL_CODE}
    assert (b"content-length", str(len(out)).encode()) in sent[0]["headers"]
    plain = json.dumps({"jsonrpc": "2.0", "id": 7, "error": {"code": -32603, "message": "boom"}}).encode()
    _, out = _tap_run([(b"content-type", b"application/json")], [plain])
    assert out == plain


def test_the_tap_rewrites_only_this_calls_signal_event_in_an_sse_answer() -> None:
    note = b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n'
    other = json.dumps({"jsonrpc": "2.0", "id": 8, "error": signal_error("github")}).encode()
    ours = json.dumps({"jsonrpc": "2.0", "id": 7, "error": signal_error("github")}).encode()
    stream = note + b"data: " + other + b"\n\n" + b"event: message\ndata: " + ours + b"\n\n"
    _, out = _tap_run([(b"content-type", b"text/event-stream")], [stream[:25], stream[25:90], stream[90:]])
    events = out.split(b"\n\n")
    assert events[0] + b"\n\n" == note and events[1] == b"data: " + other
    assert events[2].startswith(b"event: message\ndata: ")
    assert json.loads(events[2].split(b"data: ", 1)[1])["result"] == {"rewritten": SIGNAL_CODE}


def test_sessions_remember_only_whether_url_elicitation_was_declared_and_forget_the_oldest() -> None:
    sessions = SessionCapabilities(limit=2)
    sessions.remember("s1", {"elicitation": {"url": {}}, "experimental": {"x": "y" * 1000}})
    sessions.remember("s2", FORM_ONLY)
    assert sessions.get("s1") == {"elicitation": {"url": {}}} and sessions.get("s2") is None
    sessions.remember("s3", URL_CAPS)
    assert sessions.get("s1") is None and sessions.get("s3") is not None and sessions.get(None) is None


# -- the layer, around a small ASGI app ------------------------------------------------------------
class RecordingApp:
    """Answers tools/call with the signal unless the provider token came in the scope's headers;
    records every body it read."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body)
        self.bodies.append(request)
        sent = dict(scope.get(CONNECTION_HEADERS_KEY, ()))
        if connection_header("github") in sent:
            answer = {
                "jsonrpc": "2.0",
                "id": request["id"],
                "result": {"content": [], "token": sent[connection_header("github")]},
            }
        else:
            answer = {"jsonrpc": "2.0", "id": request["id"], "error": signal_error("github")}
        raw = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": raw})


def _through_layer(
    layer: ElicitationLayer, broker: StandInBroker, params: dict[str, Any], username: str | None = "alice"
) -> dict[str, Any]:
    request = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "create_issue", "arguments": {}, **params},
    }
    raw = json.dumps(request).encode()
    identity = Identity("alice", "c1", ("mcp",), ("https://authgate.example/mcp",), 2_000_000_000, username=username)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        PARSED_BODY_KEY: (raw, request),
        SCOPE_KEY: identity,
        CONNECTION_BROKER_KEY: broker,
    }
    out: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: Any) -> None:
        out.append(message)

    anyio.run(layer, scope, receive, send)
    assert [m["type"] for m in out] == ["http.response.start", "http.response.body"], out
    answer: dict[str, Any] = json.loads(out[1]["body"])
    return answer


@pytest.mark.requirement(req.ISSUE15_UPSTREAM_INPUT_REQUIRED_PASSES)
def test_the_layer_strips_its_own_state_before_the_app_and_reruns_a_call_that_went_without_the_token() -> None:
    app, broker = RecordingApp(), StandInBroker()
    layer = ElicitationLayer(app, secret=b"k" * 32, ttl=900, tools={}, max_body=1 << 20, gateway=True)
    meta = {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": URL_CAPS,
        }
    }
    asked = _through_layer(layer, broker, meta)
    state = asked["result"]["requestState"]
    assert state.startswith(PREFIX) and len(app.bodies) == 1
    broker.tokens[("alice", "github")] = "gh-token"
    done = _through_layer(layer, broker, {**meta, **_retry(state)})
    assert done["result"]["token"] == "gh-token"
    forwarded = app.bodies[-1]["params"]
    assert "requestState" not in forwarded and "inputResponses" not in forwarded  # never reaches the app
    # another process (nothing learned): the signal, while connected → the call runs again, with the token
    fresh = ElicitationLayer(RecordingApp(), secret=b"k" * 32, ttl=900, tools={}, max_body=1 << 20, gateway=True)
    rerun = _through_layer(fresh, broker, meta)
    assert rerun["result"]["token"] == "gh-token" and len(fresh.app.bodies) == 2  # type: ignore[attr-defined]


def test_a_machine_client_is_told_it_has_no_connection_and_no_link_is_made() -> None:
    broker = StandInBroker()
    layer = ElicitationLayer(
        RecordingApp(), secret=b"k" * 32, ttl=900, tools={"create_issue": "github"}, max_body=1 << 20, gateway=True
    )
    configured = _through_layer(layer, broker, {}, username=None)
    assert configured["result"]["isError"] is True and "machine client" in configured["result"]["content"][0]["text"]
    signalled = _through_layer(
        ElicitationLayer(RecordingApp(), secret=b"k" * 32, ttl=900, tools={}, max_body=1 << 20),
        broker,
        {},
        username=None,
    )
    assert "machine client" in signalled["result"]["content"][0]["text"]
    assert broker.links == 0
