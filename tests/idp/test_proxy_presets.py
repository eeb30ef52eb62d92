"""The `github` and `google` presets against local stand-ins (`FakeGitHub`, `FakeGoogle`):
github.com and Google cannot be reached here. Checked: the endpoints and parameters authgate
uses, the identity it maps (GitHub `github|<id>` + login + primary verified e-mail + orgs;
Google `iss|sub` + e-mail), the org / domain allow-lists, and what it keeps of the upstream
tokens (GitHub OAuth apps give no refresh token; Google does with access_type=offline)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from proxy_harness import SECRET_KEY, ProxyBrowser, proxy_gate
from proxy_standins import FakeGitHub, FakeGoogle
from test_proxy_flow import _register_and_authorize_url

from authgate.oauth.sealing import derive_key, unseal
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.ports import free_port

CLIENT_ID, CLIENT_SECRET = "Iv1.standin", "standin-secret-" + "g" * 24


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def _serve(stack: ExitStack, standin: FakeGitHub | FakeGoogle) -> str:
    port = free_port()
    standin.url = f"http://127.0.0.1:{port}"
    return stack.enter_context(serve_asgi_in_thread(standin.app(), port))


def _gate(tmp_path: Path, stack: ExitStack, **settings: Any) -> AuthgateServer:
    gate = proxy_gate(tmp_path / "gate", idp_client_id=CLIENT_ID, idp_client_secret=CLIENT_SECRET, **settings)
    gate.start()
    stack.callback(gate.stop)
    return gate


async def _sign_in(gate: AuthgateServer, account: str = "-") -> tuple[dict[str, str], str]:
    client_id, url = _register_and_authorize_url(gate)
    browser = ProxyBrowser(account)
    try:
        return await anyio.to_thread.run_sync(browser.authorize, url), client_id
    finally:
        browser.close()


def _code_subject(gate: AuthgateServer) -> str:
    """The local user the issued code is for (the upstream subject)."""
    with sqlite3.connect(gate.data_dir / "authgate.db") as conn:
        (user_id,) = conn.execute("SELECT user_id FROM authorization_codes").fetchone()
    return str(user_id)


def _vault(gate: AuthgateServer, user_id: str) -> dict[str, Any]:
    with sqlite3.connect(gate.data_dir / "authgate.db") as conn:
        (blob,) = conn.execute("SELECT sealed_tokens FROM upstream_tokens WHERE user_id = ?", (user_id,)).fetchone()
    data: dict[str, Any] = json.loads(
        unseal(derive_key(SECRET_KEY.encode(), "upstream-tokens"), blob, user_id.encode())
    )
    return data


async def test_github_preset_maps_id_login_email_and_orgs(tmp_path: Path, stack: ExitStack) -> None:
    github = FakeGitHub(CLIENT_ID, CLIENT_SECRET)
    base = _serve(stack, github)
    gate = _gate(
        tmp_path,
        stack,
        idp_preset="github",
        idp_authorize_url=f"{base}/login/oauth/authorize",
        idp_token_url=f"{base}/login/oauth/access_token",
        idp_userinfo_url=base,
        allowed_github_orgs=["ACME"],
    )
    params, _ = await _sign_in(gate)
    assert "code" in params, params
    assert _code_subject(gate) == "github|4242"
    with sqlite3.connect(gate.data_dir / "authgate.db") as conn:
        assert conn.execute("SELECT username FROM users").fetchall() == [("octocat",)]
        assert conn.execute("SELECT provider, email FROM upstream_tokens").fetchall() == [("github", "octo@corp.test")]
    auth = next(q for m, p, q in github.requests if p == "/login/oauth/authorize")
    assert auth["scope"].split() == ["read:user", "user:email", "read:org"] and auth["code_challenge_method"] == "S256"
    assert "nonce" not in auth  # not OIDC
    token_form = next(q for m, p, q in github.requests if p == "/login/oauth/access_token")
    assert (
        token_form["client_secret"] == CLIENT_SECRET and token_form["redirect_uri"] == f"{gate.url}/upstream/callback"
    )
    assert [p for m, p, q in github.requests if p.startswith("/user")] == ["/user", "/user/emails", "/user/orgs"]
    kept = _vault(gate, "github|4242")
    assert kept["access_token"] in github.tokens and "refresh_token" not in kept  # OAuth apps: no refresh


async def test_github_preset_refuses_a_user_outside_the_orgs(tmp_path: Path, stack: ExitStack) -> None:
    github = FakeGitHub(CLIENT_ID, CLIENT_SECRET, orgs=("other",))
    base = _serve(stack, github)
    gate = _gate(
        tmp_path,
        stack,
        idp_preset="github",
        idp_authorize_url=f"{base}/login/oauth/authorize",
        idp_token_url=f"{base}/login/oauth/access_token",
        idp_userinfo_url=base,
        allowed_github_orgs=["acme"],
    )
    params, _ = await _sign_in(gate)
    assert params["error"] == "access_denied" and "code" not in params


async def test_google_preset_uses_discovery_userinfo_and_offline_access(tmp_path: Path, stack: ExitStack) -> None:
    google = FakeGoogle(CLIENT_ID, CLIENT_SECRET)
    base = _serve(stack, google)
    gate = _gate(tmp_path, stack, idp_preset="google", idp_issuer=base, allowed_email_domains=["corp.test"])
    params, _ = await _sign_in(gate)
    assert "code" in params, params
    assert _code_subject(gate) == f"{base}|1077"
    with sqlite3.connect(gate.data_dir / "authgate.db") as conn:
        assert conn.execute("SELECT username FROM users").fetchall() == [("ann@corp.test",)]
    auth = next(q for m, p, q in google.requests if p == "/o/oauth2/v2/auth")
    assert auth["access_type"] == "offline" and auth["prompt"] == "consent" and auth["nonce"]
    assert set(auth["scope"].split()) == {"openid", "email", "profile"}
    assert any(p == "/v1/userinfo" for m, p, q in google.requests)
    assert "refresh_token" in _vault(gate, f"{base}|1077")


async def test_google_preset_refuses_another_domain(tmp_path: Path, stack: ExitStack) -> None:
    google = FakeGoogle(CLIENT_ID, CLIENT_SECRET, email="eve@gmail.test")
    base = _serve(stack, google)
    gate = _gate(tmp_path, stack, idp_preset="google", idp_issuer=base, allowed_email_domains=["corp.test"])
    params, _ = await _sign_in(gate)
    assert params["error"] == "access_denied" and "code" not in params


SEED_004 = Path(__file__).resolve().parents[2] / "docs" / "seeds" / "004-github-proxy.md"


def _page_toml() -> dict[str, Any]:
    import re
    import tomllib

    block = re.search(r"```toml\n(.*?)```", SEED_004.read_text(), re.S)
    assert block, "docs/seeds/004-github-proxy.md has no TOML block"
    return tomllib.loads(block.group(1))


async def test_seed_004_page_configuration_against_fake_github(tmp_path: Path, stack: ExitStack) -> None:
    page = _page_toml()
    github = FakeGitHub(page["idp_client_id"], page["idp_client_secret"], orgs=("acme",))
    base = _serve(stack, github)
    settings = {k: v for k, v in page.items() if k != "public_url"}  # the test's own loopback URL
    gate = proxy_gate(
        tmp_path / "gate",
        **settings,
        idp_authorize_url=f"{base}/login/oauth/authorize",
        idp_token_url=f"{base}/login/oauth/access_token",
        idp_userinfo_url=base,
    )
    gate.start()
    stack.callback(gate.stop)
    params, _ = await _sign_in(gate)
    assert "code" in params, params
    assert _code_subject(gate) == "github|4242"
