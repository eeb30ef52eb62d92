"""How errors become HTTP answers: an OAuthError knows its status and headers (errors.py) and
one function renders it (error_responses.py); httpx's failures become the tree's Unreachable
in one place (httpx_errors.py), over real sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from authgate.error_responses import oauth_error
from authgate.errors import (
    AccessDenied,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    OAuthError,
    ServerError,
    SlowDown,
    TemporarilyUnavailable,
    Unreachable,
)
from authgate.httpx_errors import translated
from support import requirements as req


def rendered(exc: OAuthError, *, basic_attempted: bool = False) -> tuple[int, dict[str, str], object]:
    response = oauth_error(exc, basic_attempted=basic_attempted)
    return response.status_code, dict(response.headers), json.loads(response.body)


def test_temporarily_unavailable_is_a_503_with_its_retry_after() -> None:
    status, headers, body = rendered(TemporarilyUnavailable("the IdP is down", retry_after=7))
    assert (status, headers["retry-after"]) == (503, "7")
    assert body == {"error": "temporarily_unavailable", "error_description": "the IdP is down"}
    assert headers["cache-control"] == "no-store"  # RFC 6749 §5.1


def test_slow_down_is_a_429_with_its_retry_after() -> None:
    status, headers, body = rendered(SlowDown("too many registrations", retry_after=42))
    assert (status, headers["retry-after"]) == (429, "42")
    assert body == {"error": "slow_down", "error_description": "too many registrations"}


@pytest.mark.parametrize(
    "exc", [InvalidGrant("used"), InvalidRequest(), AccessDenied("no"), ServerError("x"), InvalidClient("who?")]
)
def test_other_errors_carry_no_retry_after_nor_challenge(exc: OAuthError) -> None:
    status, headers, body = rendered(exc)
    assert status == exc.status and "retry-after" not in headers and "www-authenticate" not in headers
    assert body == exc.as_dict()


@pytest.mark.requirement(req.RFC6749_5_2_INVALID_CLIENT)
def test_invalid_client_after_basic_carries_the_basic_challenge() -> None:
    status, headers, _ = rendered(InvalidClient("wrong secret"), basic_attempted=True)
    assert (status, headers["www-authenticate"]) == (401, 'Basic realm="authgate"')
    # a challenge belongs to invalid_client only: Basic on /token does not make others 401
    assert "www-authenticate" not in rendered(InvalidGrant("used"), basic_attempted=True)[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose listener accepts connections (the kernel does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_becomes_unreachable_naming_the_request() -> None:
    url = f"http://127.0.0.1:{closed_port()}/doc"
    with pytest.raises(Unreachable) as caught, translated(f"GET {url}"):
        httpx.get(url)
    exc = caught.value
    assert (exc.what, exc.kind, exc.timed_out) == (f"GET {url}", "ConnectError", False)
    assert str(exc).startswith(f"GET {url}: ConnectError: ")
    assert exc.__cause__ is None and exc.__suppress_context__  # httpx's traceback is not the news


def test_a_silent_server_becomes_unreachable_timed_out(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}/doc"
    with pytest.raises(Unreachable) as caught, translated(f"GET {url}"):
        httpx.get(url, timeout=0.2)
    assert (caught.value.kind, caught.value.timed_out) == ("ReadTimeout", True)


def test_other_exceptions_pass_through_untranslated() -> None:
    with pytest.raises(ValueError, match="not JSON"), translated("GET https://example.test/"):
        raise ValueError("not JSON")
