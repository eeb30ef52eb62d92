"""External-mode settings: refused with a message that names the setting, the problem and
the fix; and `authgate serve` in external mode opens no store and creates no user."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from authgate.config.settings import load_settings
from authgate.errors import ConfigError
from support.ports import free_port

STARTUP_TIMEOUT = 20.0


@pytest.mark.parametrize(
    "overrides, setting, words",
    [
        ({"auth_mode": "external"}, "issuer", "needs the identity provider's issuer"),
        (
            {"auth_mode": "external", "issuer": "https://t.eu.auth0.com", "idp_profile": "auth0"},
            "issuer",
            "use 'https://t.eu.auth0.com/'",
        ),
        ({"auth_mode": "external", "issuer": "http://idp.example.com"}, "issuer", "HTTPS is required"),
        (
            {"auth_mode": "external", "issuer": "https://kc.example.com/auth", "idp_profile": "keycloak"},
            "issuer",
            "/realms/REALM",
        ),
        (
            {
                "auth_mode": "external",
                "issuer": "https://login.microsoftonline.com/common/v2.0",
                "idp_profile": "entra",
            },
            "issuer",
            "one tenant id",
        ),
        ({"jwt_algorithms": ["HS256"]}, "jwt_algorithms", "never accepted"),
        ({"jwt_algorithms": ["none"]}, "jwt_algorithms", "never accepted"),
        ({"mirror_as_metadata": True}, "mirror_as_metadata", "auth_mode = external only"),
        (
            {"auth_mode": "external", "issuer": "https://idp.example.com", "introspection_endpoint": "https://idp/i"},
            "introspection_client_secret",
            "needs introspection_client_id",
        ),
    ],
)
def test_wrong_external_settings_are_config_errors(overrides: dict[str, object], setting: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, **overrides)
    assert caught.value.setting == setting and words in caught.value.problem, str(caught.value)
    assert caught.value.fix


def test_the_issuer_is_kept_exactly_and_audiences_default_to_the_mcp_url() -> None:
    from authgate.idp.backend import token_policy

    settings = load_settings(
        None,
        auth_mode="external",
        issuer="https://t.us.auth0.com/",
        idp_profile="auth0",
        public_url="https://mcp.example.com",
    )
    policy = token_policy(settings)
    assert policy.issuer == "https://t.us.auth0.com/"
    assert policy.audiences == ("https://mcp.example.com/mcp",)
    assert policy.require_at_jwt_typ is False  # Auth0 does not stamp at+jwt
    generic = token_policy(load_settings(None, auth_mode="external", issuer="https://idp.example.com"))
    assert generic.require_at_jwt_typ is True
    relaxed = token_policy(
        load_settings(
            None, auth_mode="external", issuer="https://idp.example.com", jwt_require_typ=False, audiences=["a", "b"]
        )
    )
    assert relaxed.require_at_jwt_typ is False and relaxed.audiences == ("a", "b")


def test_serve_in_external_mode_opens_no_store_and_serves_no_authorization_server(tmp_path: Path) -> None:
    port, idp_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp_port}/realms/down"  # nothing listens: the IdP is down
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(
        {
            "AUTHGATE_PORT": str(port),
            "AUTHGATE_DATA_DIR": str(tmp_path / "data"),
            "AUTHGATE_AUTH_MODE": "external",
            "AUTHGATE_ISSUER": issuer,
            "AUTHGATE_IDP_PROFILE": "keycloak",
        }
    )
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "authgate", "serve"], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with httpx.Client(base_url=base, timeout=5.0) as http:
            while True:
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
            assert http.get("/.well-known/oauth-protected-resource").json()["authorization_servers"] == [issuer]
            assert http.post("/token").status_code == 404
            assert http.get("/health/ready").status_code == 503
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    data = tmp_path / "data"
    assert not (data / "authgate.db").exists() and not (data / "initial-admin-password").exists()


def test_missing_node_peers_fail_under_ci_and_skip_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from support import idp_peers

    monkeypatch.setattr(idp_peers, "PROVIDER_PACKAGE", idp_peers.NODE_DIR / "node_modules" / "absent" / "package.json")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="scripts/test.sh"):
        idp_peers.require_oidc_provider()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="npm ci"):
        idp_peers.require_oidc_provider()
