"""The one error-redirect helper, seen from a client of a real `authgate serve`: every OAuth
error sent back to a verified redirect URI carries `state` exactly when the request did, and
RFC 9207 `iss` always."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer

CALLBACK = "http://127.0.0.1:53682/callback?app=1"  # a query of its own, kept before ours


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    srv = AuthgateServer(tmp_path_factory.mktemp("error-redirects"))
    srv.start()
    yield srv
    srv.stop()


def refused(server: AuthgateServer, **params: str) -> list[tuple[str, str]]:
    """The redirect's query for an authorization request without PKCE (refused by redirect)."""
    r = httpx.post(
        server.endpoint("register"),
        json={"redirect_uris": [CALLBACK], "client_name": "errors", "token_endpoint_auth_method": "none"},
    )
    assert r.status_code == 201, r.text
    query = {"response_type": "code", "client_id": r.json()["client_id"], "redirect_uri": CALLBACK, **params}
    answer = httpx.get(server.endpoint("authorize") + "?" + urlencode(query))
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK.split("?")[0]
    return parse_qsl(location.query, keep_blank_values=True)


@pytest.mark.requirement(req.RFC6749_4_1_2_1_ERROR_STATE)
@pytest.mark.requirement(req.RFC9207_ISS)
def test_an_error_redirect_carries_the_state_it_was_sent_and_iss(server: AuthgateServer) -> None:
    params = refused(server, state="st/1 &x")
    assert params[0] == ("app", "1")
    found = dict(params)
    assert (found["error"], found["state"], found["iss"]) == ("invalid_request", "st/1 &x", server.issuer)


@pytest.mark.requirement(req.RFC6749_4_1_2_1_ERROR_STATE)
def test_an_error_redirect_without_state_carries_none(server: AuthgateServer) -> None:
    params = refused(server)
    names = [name for name, _ in params]
    assert "state" not in names
    assert dict(params)["error"] == "invalid_request" and dict(params)["iss"] == server.issuer
