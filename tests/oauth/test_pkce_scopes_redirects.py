"""PKCE, scope rules and redirect URI rules of the OAuth core."""

from __future__ import annotations

import re

import pytest

from authgate.errors import InvalidGrant, InvalidRedirectUri, InvalidRequest
from authgate.oauth import pkce, redirect_uris, scopes
from support import requirements as req

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"


@pytest.mark.requirement(req.RFC7636_B_S256_VECTOR)
def test_s256_matches_rfc_7636_vector() -> None:
    assert pkce.s256(VERIFIER) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.requirement(req.OAUTH21_4_1_1_PKCE_REQUIRED)
def test_missing_challenge_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="code_challenge is required"):
        pkce.check_challenge(None, None)


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_S256_ONLY)
@pytest.mark.parametrize("method", [None, "plain", "s256"])
def test_only_s256_is_accepted(method: str | None) -> None:
    with pytest.raises(InvalidRequest, match="S256"):
        pkce.check_challenge(pkce.s256(VERIFIER), method)


@pytest.mark.requirement(req.RFC7636_4_6_VERIFIER_MATCHES)
def test_wrong_verifier_is_invalid_grant() -> None:
    challenge = pkce.check_challenge(pkce.s256(VERIFIER), "S256")
    pkce.verify(VERIFIER, challenge)
    with pytest.raises(InvalidGrant):
        pkce.verify(VERIFIER[:-1] + "A", challenge)
    with pytest.raises(InvalidGrant):
        pkce.verify("short", challenge)
    with pytest.raises(InvalidGrant):
        pkce.verify(None, challenge)


def test_unknown_scopes_are_dropped_and_empty_gets_defaults() -> None:
    offered = ["mcp"]
    assert scopes.grantable(("openid", "profile", "mcp"), offered, offered) == ("mcp",)
    assert scopes.grantable((), offered, offered) == ("mcp",)
    assert scopes.grantable(("address", "phone"), offered, offered) == ("mcp",)
    assert scopes.grantable(("offline_access",), offered, offered) == ("mcp", "offline_access")


def test_scope_parse_dedupes_and_keeps_order() -> None:
    assert scopes.parse("b a  b") == ("b", "a")
    assert scopes.parse(None) == ()


@pytest.mark.requirement(req.RFC8252_7_3_LOOPBACK_ANY_PORT)
def test_loopback_redirect_matches_any_port_but_same_host_and_path() -> None:
    registered = ["http://127.0.0.1:6276/oauth/callback"]
    assert redirect_uris.matches(registered, "http://127.0.0.1:51234/oauth/callback")
    assert not redirect_uris.matches(registered, "http://localhost:6276/oauth/callback")
    assert not redirect_uris.matches(registered, "http://127.0.0.1:6276/other")


@pytest.mark.requirement(req.OAUTH21_4_1_1_REDIRECT_URI_EXACT)
def test_non_loopback_redirect_requires_exact_match() -> None:
    registered = ["https://chatgpt.com/connector_platform_oauth_redirect"]
    assert redirect_uris.matches(registered, registered[0])
    assert not redirect_uris.matches(registered, registered[0] + "/")
    assert not redirect_uris.matches(registered, "https://chatgpt.com:443/connector_platform_oauth_redirect")


@pytest.mark.requirement(req.RFC7591_2_REDIRECT_URIS)
@pytest.mark.parametrize(
    "uri", ["http://evil.example/cb", "https://ok.example/cb#frag", "javascript:alert(1)", "/relative", "myapp:/cb"]
)
def test_bad_redirect_uris_are_refused_at_registration(uri: str) -> None:
    with pytest.raises(InvalidRedirectUri):
        redirect_uris.validate_for_registration(uri)


@pytest.mark.requirement(req.MCP_2026_07_28_APPLICATION_TYPE)
def test_custom_schemes_are_for_native_apps_only() -> None:
    redirect_uris.validate_for_registration("cursor://anysphere.cursor-mcp/oauth/callback", "native")
    with pytest.raises(InvalidRedirectUri, match="native"):
        redirect_uris.validate_for_registration("cursor://anysphere.cursor-mcp/oauth/callback", "web")


def test_form_action_source_allows_the_redirect_target() -> None:
    assert redirect_uris.form_action_source("http://127.0.0.1:5173/cb") == "http://127.0.0.1:*"
    assert redirect_uris.form_action_source("https://claude.ai/api/mcp/auth_callback") == "https://claude.ai"
    assert redirect_uris.form_action_source("com.example.app:/cb") == "com.example.app:"


@pytest.mark.requirement(req.RFC9700_4_1_3_REDIRECT_URI)
@pytest.mark.parametrize(
    "uri, says",
    [
        ("https://claude.ai@evil.example/cb", "user information"),
        ("https://:pw@evil.example/cb", "user information"),
        ("http://claude.ai@127.0.0.1:3000/cb", "user information"),
        ("https://a.example\\@b.example/cb", "user information"),
        ("https://a.example\\.b.example/cb", "backslash"),
        ("https://ok.example/cb\r\nSet-Cookie: x=1", "U+000D"),
        ("https://ok.example/cb\n", "U+000A"),
        ("https://ok.example/c\x00b", "U+0000"),
        ("https://ok.example/c\x1bb", "U+001B"),
        ("https://ok.example/c\x7fb", "U+007F"),
        ("https://ok.example/a b", "U+0020"),
        ("\thttps://ok.example/cb", "U+0009"),
        ("https://ok.example/\u202ebc", "U+202E"),
        ("https://ok.example/\u200bcb", "U+200B"),
    ],
)
def test_deceptive_redirect_uris_are_refused_at_registration(uri: str, says: str) -> None:
    with pytest.raises(InvalidRedirectUri, match=re.escape(says)):
        redirect_uris.validate_for_registration(uri)


def test_loopback_port_exception_does_not_admit_userinfo_or_control_characters() -> None:
    registered = ["http://127.0.0.1/cb"]
    assert redirect_uris.matches(registered, "http://127.0.0.1:4321/cb")
    assert not redirect_uris.matches(registered, "http://x@127.0.0.1:4321/cb")
    assert not redirect_uris.matches(registered, "http://127.0.0.1:4321/cb\r\n")


@pytest.mark.parametrize(
    "uri, shown",
    [
        ("https://claude.ai/api/mcp/auth_callback", "claude.ai"),
        ("https://EXAMPLE.com:8443/path?next=https://claude.ai", "example.com"),
        ("http://127.0.0.1:33418/callback", "127.0.0.1"),
        ("http://[::1]:3000/cb", "[::1]"),
        ("https://ex\u0430mple.com/cb", "xn--exmple-4nf.com"),  # a Cyrillic "а"
        ("cursor://anysphere.cursor-mcp/oauth/callback", "cursor:"),
    ],
)
def test_display_host_is_the_host_alone(uri: str, shown: str) -> None:
    assert redirect_uris.display_host(uri) == shown


def test_a_pending_request_signed_before_the_unverified_flag_reads_as_unverified() -> None:
    from authgate.oauth.authorize import AuthorizationRequest

    req = AuthorizationRequest(
        client_id="c",
        client_name="Claude",
        redirect_uri="https://claude.ai@evil.example/cb",
        state=None,
        scopes=("mcp",),
        resources=("https://r/mcp",),
        code_challenge="x",
        via_cimd=False,
        loopback_only=False,
        unverified_client=False,
    )
    assert AuthorizationRequest.from_dict(req.to_dict()) == req
    older = {k: v for k, v in req.to_dict().items() if k != "unverified_client"}
    assert AuthorizationRequest.from_dict(older).unverified_client is True
    assert req.redirect_host == "evil.example"
