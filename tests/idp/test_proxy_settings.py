"""Proxy-mode settings (refused with a ConfigError naming the setting), the identity mapping,
the allow-lists, and the upstream token vault (sealed; refreshed where a refresh token exists)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from authgate.config.settings import load_settings
from authgate.errors import ConfigError
from authgate.idp.proxy.identity import UpstreamIdentity, from_github, from_oidc, refusal
from authgate.idp.proxy.vault import UpstreamVault
from authgate.store.models import UpstreamTokens
from authgate.store.sql import SqlStore
from authgate.store.sql.upstream_tokens import SqlUpstreamTokenStore

OK = {"auth_mode": "proxy", "idp_preset": "github", "idp_client_id": "Iv1.x", "idp_client_secret": "s" * 20}


@pytest.mark.parametrize(
    "overrides, setting, words",
    [
        ({"auth_mode": "proxy"}, "idp_preset", "needs the upstream IdP"),
        ({**OK, "idp_client_id": None}, "idp_client_id", "needs the client_id"),
        ({**OK, "idp_client_secret": ""}, "idp_client_secret", "needs the client secret"),
        ({**OK, "idp_preset": "oidc"}, "idp_issuer", "needs the upstream's issuer"),
        ({**OK, "idp_preset": "entra"}, "idp_issuer", "needs the upstream's issuer"),
        ({**OK, "idp_preset": "oauth2"}, "idp_authorize_url", "explicit endpoints"),
        ({**OK, "idp_preset": "oidc", "idp_issuer": "http://idp.example.com"}, "idp_issuer", "HTTPS"),
        ({**OK, "idp_preset": "google", "allowed_github_orgs": ["acme"]}, "allowed_github_orgs", "github"),
        ({**OK, "allowed_email_domains": ["@corp.test"]}, "allowed_email_domains", "domain"),
        ({"idp_preset": "github"}, "idp_preset", 'auth_mode = "proxy" only'),
    ],
)
def test_wrong_proxy_settings_are_config_errors(overrides: dict[str, Any], setting: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, **{k: v for k, v in overrides.items()})
    assert caught.value.setting == setting and words in caught.value.problem, str(caught.value)


def test_a_complete_proxy_configuration_loads() -> None:
    s = load_settings(None, **OK, allowed_github_orgs=["acme"])
    assert s.auth_mode == "proxy" and s.idp_client_secret is not None


def test_identity_mapping() -> None:
    who = from_oidc("https://accounts.google.com", {"sub": "1", "email": "a@b.test", "email_verified": True})
    assert (who.subject, who.username, who.email_verified) == ("https://accounts.google.com|1", "a@b.test", True)
    gh = from_github(
        {"id": 7, "login": "octo"}, [{"email": "x@y.test", "primary": True, "verified": False}], [{"login": "acme"}]
    )
    assert (gh.subject, gh.username, gh.email, gh.orgs) == ("github|7", "octo", None, ("acme",))


@pytest.mark.parametrize(
    "lists, who, allowed",
    [
        ({}, UpstreamIdentity("s", "anyone"), True),
        ({"allowed_users": ["Alice"]}, UpstreamIdentity("s", "alice"), True),
        ({"allowed_users": ["alice"]}, UpstreamIdentity("s", "bob"), False),
        ({"allowed_emails": ["b@x.test"]}, UpstreamIdentity("s", "b", "B@x.test", True), True),
        ({"allowed_emails": ["b@x.test"]}, UpstreamIdentity("s", "b", "b@x.test", False), False),  # unverified
        ({"allowed_email_domains": ["x.test"]}, UpstreamIdentity("s", "c", "c@x.test", True), True),
        ({"allowed_email_domains": ["x.test"]}, UpstreamIdentity("s", "c", "c@evil-x.test", True), False),
        ({"allowed_github_orgs": ["acme"]}, UpstreamIdentity("s", "d", orgs=("Acme",)), True),
    ],
)
def test_allow_lists(lists: dict[str, list[str]], who: UpstreamIdentity, allowed: bool) -> None:
    settings = load_settings(None, **OK, **lists)
    assert (refusal(settings, who) is None) is allowed


class _Refresher:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        self.calls.append(refresh_token)
        return {"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600}


async def test_vault_seals_and_refreshes_an_expired_upstream_token(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await store.open()
    try:
        vault = UpstreamVault(SqlUpstreamTokenStore(store), b"k" * 32, "oidc")
        who = UpstreamIdentity("iss|alice", "alice", "a@x.test", True)
        await vault.save(who, {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 1}, time.time() - 10)
        record = await SqlUpstreamTokenStore(store).get_upstream("iss|alice")
        assert isinstance(record, UpstreamTokens) and b"at-1" not in record.sealed_tokens
        assert (await store.get_user("iss|alice")) is not None
        refresher = _Refresher()
        assert await vault.access_token("iss|alice", refresher) == "at-2"  # type: ignore[arg-type]
        assert refresher.calls == ["rt-1"]
        assert json.dumps(await vault.tokens("iss|alice")).count("rt-2") == 1
        assert await vault.access_token("iss|alice", refresher) == "at-2" and len(refresher.calls) == 1  # type: ignore[arg-type]
    finally:
        await store.close()
