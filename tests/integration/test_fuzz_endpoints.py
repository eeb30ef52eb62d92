"""Property-based fuzzing of every endpoint an outsider can reach (issue 11, done-when 11).

Hypothesis sends arbitrary JSON, forms, query strings and headers to the real `authgate serve`
on a real socket: /register, /token, /authorize, /login, /consent, /revoke and /mcp (with a
valid token, so the policy layer, the guard and the MCP app are all reached). Whatever arrives,
the answer is never a 5xx and no body carries a Python traceback.

CI runs a bounded number of examples per endpoint; set AUTHGATE_FUZZ_EXAMPLES (e.g. 2000) for a
longer hunt. Failing examples are printed by Hypothesis and can be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.authgate_server import AuthgateServer
from support.headless import authorize

EXAMPLES = int(os.environ.get("AUTHGATE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REDIRECT = "http://127.0.0.1:9/cb"
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "site-packages")

# Text that reaches every corner: control characters, separators, huge code points, markup.
NASTY = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\r\n",
        "\u2028",
        "%00",
        "../../etc/passwd",
        "<script>",
        "'\"",
        "https://claude.ai@evil.example/cb",
        "a" * 5000,
        "\ud7ff",
        "-1",
        "1e309",
        "NaN",
        "null",
        "{}",
        "[]",
        "S256",
        "plain",
    ]
)
TEXT = st.one_of(st.text(max_size=64), NASTY)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), TEXT)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(TEXT, inner, max_size=5)),
    max_leaves=20,
)
HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(str.strip)

REGISTRATION_KEYS = [
    "redirect_uris",
    "grant_types",
    "response_types",
    "token_endpoint_auth_method",
    "client_name",
    "scope",
    "client_uri",
    "logo_uri",
    "jwks",
    "jwks_uri",
    "contacts",
    "software_id",
    "software_statement",
    "application_type",
    "client_id",
]
TOKEN_KEYS = [
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "code_verifier",
    "refresh_token",
    "scope",
    "resource",
    "token",
    "token_type_hint",
]
AUTHORIZE_KEYS = [
    "response_type",
    "client_id",
    "redirect_uri",
    "code_challenge",
    "code_challenge_method",
    "state",
    "scope",
    "resource",
    "prompt",
    "request",
    "request_uri",
]
FORM_KEYS = ["username", "password", "csrf_token", "request", "decision", "scope"]


def _fields(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    known = st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))
    return st.builds(lambda a, b: {**b, **a}, known, st.dictionaries(TEXT, values, max_size=3))


def _assert_sound(r: httpx.Response) -> None:
    assert r.status_code < 500, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:500]}"
    body = r.text
    for marker in TRACEBACK_MARKERS:
        assert marker not in body, f"{r.request.url} answered with internals ({marker!r}): {body[:500]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    server = AuthgateServer(
        tmp_path_factory.mktemp("fuzz"),
        extra_env={"AUTHGATE_REGISTRATIONS_PER_MINUTE": "100000", "AUTHGATE_LOGIN_ATTEMPTS_PER_MINUTE": "100000"},
    )
    server.add_user()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token(server: AuthgateServer) -> str:
    client = httpx.post(
        server.endpoint("register"),
        json={"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "fuzz"},
    ).json()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s",
            "resource": server.mcp_url,
        }
    )
    code = authorize(f"{server.endpoint('authorize')}?{query}", server.username, server.password).code
    r = httpx.post(
        server.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client["client_id"],
            "code_verifier": verifier,
            "resource": server.mcp_url,
        },
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, follow_redirects=False) as client:
        yield client


@FUZZ
@given(body=st.one_of(JSON, _fields(REGISTRATION_KEYS, JSON)), raw=st.booleans())
def test_register_never_fails_inside(server: AuthgateServer, http: httpx.Client, body: Any, raw: bool) -> None:
    # Python's JSON (NaN and Infinity included), or not even JSON: the bytes of its repr.
    content = repr(body) if raw else json.dumps(body)
    r = http.post(server.endpoint("register"), content=content.encode(), headers={"Content-Type": "application/json"})
    _assert_sound(r)


@FUZZ
@given(
    form=_fields(TOKEN_KEYS, TEXT),
    endpoint=st.sampled_from(["token", "revoke"]),
    auth=st.one_of(st.none(), HEADER_VALUE),
)
def test_token_and_revoke_never_fail_inside(
    server: AuthgateServer, http: httpx.Client, form: dict[str, str], endpoint: str, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    r = http.post(server.endpoint(endpoint), data=form, headers=headers)
    _assert_sound(r)
    assert r.headers.get("content-type", "").startswith("application/json"), r.text[:200]  # RFC 6749 §5.2


@FUZZ
@given(query=_fields(AUTHORIZE_KEYS, TEXT), method=st.sampled_from(["GET", "POST"]))
def test_authorize_never_fails_inside(
    server: AuthgateServer, http: httpx.Client, query: dict[str, str], method: str
) -> None:
    if method == "GET":
        r = http.get(server.endpoint("authorize"), params=query)
    else:
        r = http.post(server.endpoint("authorize"), data=query)
    _assert_sound(r)


@FUZZ
@given(
    form=_fields(FORM_KEYS, TEXT), page=st.sampled_from(["login", "consent"]), cookie=st.one_of(st.none(), HEADER_VALUE)
)
def test_login_and_consent_never_fail_inside(
    server: AuthgateServer, http: httpx.Client, form: dict[str, str], page: str, cookie: str | None
) -> None:
    headers = {"Cookie": f"authgate_csrf={cookie}; authgate_session={cookie}"} if cookie else {}
    r = http.post(server.endpoint(page), data=form, headers=headers)
    _assert_sound(r)
    _assert_sound(http.get(server.endpoint(page), params=form))


MCP_METHODS = st.one_of(
    st.sampled_from(
        [
            "initialize",
            "tools/list",
            "tools/call",
            "resources/read",
            "prompts/get",
            "ping",
            "notifications/initialized",
            "server/discover",
            "resources/subscribe",
        ]
    ),
    TEXT,
)


@FUZZ
@given(
    rpc=st.one_of(
        JSON,
        st.fixed_dictionaries(
            {"jsonrpc": st.one_of(st.just("2.0"), TEXT), "method": MCP_METHODS}, optional={"id": SCALAR, "params": JSON}
        ),
    ),
    version=st.one_of(
        st.none(), st.sampled_from(["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]), HEADER_VALUE
    ),
    session=st.one_of(st.none(), HEADER_VALUE),
    name=st.one_of(st.none(), HEADER_VALUE),
)
def test_mcp_never_fails_inside(
    server: AuthgateServer,
    http: httpx.Client,
    token: str,
    rpc: Any,
    version: str | None,
    session: str | None,
    name: str | None,
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    for header, value in (("MCP-Protocol-Version", version), ("Mcp-Session-Id", session), ("Mcp-Name", name)):
        if value is not None:
            headers[header] = value
    r = http.post(
        server.mcp_url, content=json.dumps(rpc).encode(), headers={**headers, "Content-Type": "application/json"}
    )
    _assert_sound(r)
