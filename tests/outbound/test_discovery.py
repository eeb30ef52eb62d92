"""The outbound client's discovery order and its refusals (issue 15)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from authgate.errors import FetchError
from authgate.oauth.cimd.fetching import PinnedFetcher
from authgate.oauth.cimd.policy import CimdPolicy
from authgate.outbound import authorization
from authgate.outbound.challenge import Challenge, parse_challenge
from authgate.outbound.discovery import AuthServer, as_metadata_urls, auth_server_from, discover, prm_urls
from authgate.outbound.errors import OutboundAuthError
from authgate.outbound.registration import Credentials
from support import requirements as req
from support.authgate_server import serve_asgi_in_thread

SERVER = "https://mcp.example.com/team/mcp"
ISSUER = "https://auth.example.com/tenant1"


def _as_document(issuer: str = ISSUER) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": "https://auth.example.com/tenant1/authorize",
        "token_endpoint": "https://auth.example.com/tenant1/token",
        "code_challenge_methods_supported": ["S256"],
    }


def _https_only(url: str) -> str | None:
    return None if url.startswith("https://") else "is not https"


class Documents:
    """A map of URL → document standing in for the guarded fetcher; records every URL asked."""

    def __init__(self, documents: dict[str, Any]) -> None:
        self.documents, self.asked = documents, []

    async def __call__(self, url: str, what: str) -> Any:
        self.asked.append(url)
        if url not in self.documents:
            raise FetchError(f"{what} {url}: HTTP 404")
        return self.documents[url]


@pytest.mark.requirement(req.ISSUE15_OUTBOUND_DISCOVERY)
def test_prm_and_as_metadata_urls_follow_the_specs_order() -> None:
    challenge = parse_challenge('Bearer error="invalid_token", resource_metadata="https://mcp.example.com/prm"')
    assert prm_urls(SERVER, challenge) == [
        "https://mcp.example.com/prm",
        "https://mcp.example.com/.well-known/oauth-protected-resource/team/mcp",
        "https://mcp.example.com/.well-known/oauth-protected-resource",
    ]
    assert as_metadata_urls(ISSUER) == [
        "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
        "https://auth.example.com/.well-known/openid-configuration/tenant1",
        "https://auth.example.com/tenant1/.well-known/openid-configuration",
    ]
    assert as_metadata_urls("https://auth.example.com") == [
        "https://auth.example.com/.well-known/oauth-authorization-server",
        "https://auth.example.com/.well-known/openid-configuration",
    ]


@pytest.mark.requirement(req.ISSUE15_OUTBOUND_DISCOVERY)
def test_discovery_tries_each_url_in_order_until_one_answers() -> None:
    documents = Documents(
        {
            "https://mcp.example.com/.well-known/oauth-protected-resource": {
                "resource": "https://mcp.example.com/team/mcp",
                "authorization_servers": [ISSUER],
                "scopes_supported": ["files:read"],
            },
            "https://auth.example.com/tenant1/.well-known/openid-configuration": _as_document(),
        }
    )
    found = asyncio.run(discover(SERVER, Challenge(), documents, _https_only))
    assert documents.asked == [
        "https://mcp.example.com/.well-known/oauth-protected-resource/team/mcp",
        "https://mcp.example.com/.well-known/oauth-protected-resource",
        *as_metadata_urls(ISSUER),
    ]
    assert found.resource == SERVER and found.auth_server.issuer == ISSUER
    assert found.scopes_supported == ("files:read",)


@pytest.mark.requirement(req.ISSUE15_OUTBOUND_DISCOVERY)
@pytest.mark.parametrize("issuer", ["https://attacker.example.com", ISSUER + "/", "HTTPS://auth.example.com/tenant1"])
def test_as_metadata_whose_issuer_is_not_the_one_asked_for_is_refused(issuer: str) -> None:
    with pytest.raises(OutboundAuthError, match="RFC 8414"):
        auth_server_from(_as_document(issuer), ISSUER, _https_only)


@pytest.mark.requirement(req.ISSUE15_OUTBOUND_DISCOVERY)
@pytest.mark.parametrize(
    "resource",
    ["https://evil.example.com/team/mcp", "https://mcp.example.com/other", "https://mcp.example.com/te", None],
)
def test_a_prm_that_does_not_name_the_server_is_refused_before_any_as_is_asked(resource: str | None) -> None:
    prm = {"resource": resource, "authorization_servers": [ISSUER]}
    documents = Documents({"https://mcp.example.com/.well-known/oauth-protected-resource/team/mcp": prm})
    with pytest.raises(OutboundAuthError, match="resource"):
        asyncio.run(discover(SERVER, Challenge(), documents, _https_only))
    assert documents.asked == ["https://mcp.example.com/.well-known/oauth-protected-resource/team/mcp"]


def test_an_as_endpoint_over_plain_http_is_refused() -> None:
    document = {**_as_document(), "token_endpoint": "http://auth.example.com/tenant1/token"}
    with pytest.raises(OutboundAuthError, match="token_endpoint"):
        auth_server_from(document, ISSUER, _https_only)


def test_the_redirect_back_must_carry_our_state_and_the_issuers_iss() -> None:
    server = AuthServer(ISSUER, ISSUER + "/authorize", ISSUER + "/token", iss_parameter_supported=True)
    pending = authorization.begin(server, Credentials("c"), "http://127.0.0.1:9/cb", SERVER, ("a",))
    ok = f"http://127.0.0.1:9/cb?code=x&state={pending.state}&iss={ISSUER}"
    assert authorization.code_from(pending, ok) == "x"
    for bad in (
        f"http://127.0.0.1:9/cb?code=x&state=other&iss={ISSUER}",
        f"http://127.0.0.1:9/cb?code=x&state={pending.state}",  # promised iss missing
        f"http://127.0.0.1:9/cb?code=x&state={pending.state}&iss={ISSUER}/",  # no normalization
    ):
        with pytest.raises(OutboundAuthError):
            authorization.code_from(pending, bad)


# -- the guarded fetcher, as the outbound client uses it ------------------------------------------


async def _public_dns(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


@pytest.mark.requirement(req.ISSUE15_OUTBOUND_SSRF)
def test_plain_http_to_a_non_loopback_host_is_refused_before_connecting() -> None:
    async def attempt() -> None:
        fetcher = PinnedFetcher(CimdPolicy(allow_loopback_http=True, timeout=5), _public_dns, None)
        try:
            with pytest.raises(FetchError, match="http is allowed for loopback only"):
                await fetcher.exchange("POST", "http://as.example.com/token", what="token request", form={"a": "b"})
            with pytest.raises(FetchError, match="http is allowed for loopback only"):
                await fetcher.fetch("http://as.example.com/.well-known/oauth-authorization-server")
        finally:
            await fetcher.aclose()

    asyncio.run(attempt())


@pytest.fixture
def redirecting_server() -> Iterator[str]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 302, "headers": [(b"location", b"http://10.1.2.3/prm")]})
        await send({"type": "http.response.body", "body": b""})

    with serve_asgi_in_thread(app) as url:
        yield url


@pytest.mark.requirement(req.ISSUE15_OUTBOUND_SSRF)
def test_a_redirect_to_a_private_address_is_refused(redirecting_server: str) -> None:
    async def attempt() -> None:
        fetcher = PinnedFetcher(CimdPolicy(allow_loopback_http=True, timeout=5), _public_dns, None)
        try:
            with pytest.raises(FetchError, match="10.1.2.3 is private"):
                await fetcher.fetch(redirecting_server + "/.well-known/oauth-protected-resource")
        finally:
            await fetcher.aclose()

    asyncio.run(attempt())
