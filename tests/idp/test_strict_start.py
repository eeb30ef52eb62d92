"""`strict` (`authgate serve --strict`): the start-up checks that warn refuse instead (issue 17).

The decision in process — the scope finding (idp/scopes.py), the external-mode start check
(idp/backend.py) against an IdP that is not there, the plain-http upstream (gateway/http/
settings.py) — and `authgate serve --strict` as a process: exit 2, one line, no traceback.
Against a real Keycloak realm without the `mcp` scope: tests/idp/keycloak/test_seed_003_keycloak.py.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from authgate.config.settings import load_settings
from authgate.errors import ConfigError
from authgate.gateway.http.settings import proxy_from_settings
from authgate.idp.backend import check_idp_at_start, token_policy
from authgate.idp.jwks import JwksCache
from authgate.idp.profiles import get_profile
from authgate.idp.scopes import scope_problem
from support import requirements as req
from support.ports import free_port

PUBLIC_UPSTREAM = "http://upstream.example.com:9000/mcp"  # a public name: never resolved at start


@pytest.mark.requirement(req.ISSUE17_SCOPES_EXIST_AT_IDP)
def test_the_scope_finding_names_the_setting_and_the_profiles_fix() -> None:
    keycloak = get_profile("keycloak")
    problem = scope_problem(["mcp", "docs.read"], "https://sso/realms/r", keycloak, {"scopes_supported": ["docs.read"]})
    assert problem is not None and problem.setting == "scopes"
    assert (
        problem.problem.startswith("scope(s) mcp advertised by authgate") and "https://sso/realms/r" in problem.problem
    )
    assert "Create client scope `mcp`" in problem.fix and "authgate `scopes`" in problem.fix
    assert scope_problem(["mcp"], "i", keycloak, {"scopes_supported": ["openid", "mcp"]}) is None
    assert scope_problem(["mcp"], "i", keycloak, {}) is None  # no list: cannot tell, never refused


@pytest.mark.requirement(req.ISSUE17_STRICT_START)
@pytest.mark.parametrize("strict", [False, True])
async def test_an_idp_unreachable_at_start_warns_or_with_strict_refuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, strict: bool
) -> None:
    issuer = f"http://127.0.0.1:{free_port()}/realms/gone"
    settings = load_settings(
        None, data_dir=tmp_path, auth_mode="external", issuer=issuer, idp_profile="keycloak", strict=strict
    )
    policy = token_policy(settings)
    async with httpx.AsyncClient(timeout=5.0) as http:
        jwks = JwksCache(issuer, http, min_refetch=1.0)
        with caplog.at_level(logging.WARNING, logger="authgate.idp"):
            if not strict:
                await check_idp_at_start(settings, policy, jwks, http)
                assert f"the signing keys of {issuer} are not available yet" in caplog.text
                return
            with pytest.raises(ConfigError) as refused:
                await check_idp_at_start(settings, policy, jwks, http)
    assert refused.value.setting == "issuer" and "(refused: `strict` is on)" in str(refused.value)
    assert "check that `issuer` is the IdP's issuer exactly" in refused.value.fix
    assert caplog.text == ""


@pytest.mark.requirement(req.ISSUE17_STRICT_START)
async def test_keycloaks_account_audience_warns_and_with_strict_every_problem_is_refused_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Keycloak puts `account` in every token: in `audiences` it turns the audience check off."""
    issuer = f"http://127.0.0.1:{free_port()}/realms/gone"
    base = {"data_dir": tmp_path, "auth_mode": "external", "issuer": issuer, "idp_profile": "keycloak"}
    audiences = ["http://127.0.0.1:8000/mcp", "account"]
    async with httpx.AsyncClient(timeout=5.0) as http:
        settings = load_settings(None, **base, audiences=audiences)
        with caplog.at_level(logging.WARNING, logger="authgate.idp"):
            await check_idp_at_start(settings, token_policy(settings), JwksCache(issuer, http), http)
        assert "account is in every Keycloak token's aud" in caplog.text
        assert "remove account from `audiences`" in caplog.text
        generic = load_settings(None, **{**base, "idp_profile": "generic"}, audiences=audiences)
        assert "account" in token_policy(generic).audiences and not token_policy(generic).profile.blanket_audiences
        strict = load_settings(None, **base, audiences=audiences, strict=True)
        with pytest.raises(ConfigError) as refused:
            await check_idp_at_start(strict, token_policy(strict), JwksCache(issuer, http), http)
    assert [p.setting for p in refused.value.problems] == ["audiences", "issuer"]
    assert all(p.problem.endswith("(refused: `strict` is on)") for p in refused.value.problems)


@pytest.mark.requirement(req.ISSUE17_STRICT_START)
def test_a_plain_http_public_upstream_warns_or_with_strict_refuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="authgate.gateway"):
        proxy_from_settings(load_settings(None, data_dir=tmp_path, upstream=PUBLIC_UPSTREAM))
    assert "plain http on a public address" in caplog.text
    with pytest.raises(ConfigError) as refused:
        proxy_from_settings(load_settings(None, data_dir=tmp_path, upstream=PUBLIC_UPSTREAM, strict=True))
    assert refused.value.setting == "upstream" and refused.value.fix == "use https or a private network"
    proxy_from_settings(load_settings(None, data_dir=tmp_path, upstream="http://127.0.0.1:9/mcp", strict=True))


def serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "AUTHGATE_DATA_DIR": str(tmp_path / "d")}
    return subprocess.run(
        [sys.executable, "-m", "authgate", "serve", "--strict", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )


@pytest.mark.requirement(req.ISSUE17_STRICT_START)
@pytest.mark.parametrize(
    ("args", "start"),
    [
        (
            ("--upstream", PUBLIC_UPSTREAM),
            "setting 'upstream': upstream http://upstream.example.com:9000/mcp is plain http",
        ),
        (
            ("--auth-mode", "external", "--idp-profile", "keycloak", "--issuer", "http://127.0.0.1:{port}/realms/x"),
            "setting 'issuer': the signing keys of http://127.0.0.1:",
        ),
    ],
)
def test_serve_strict_exits_2_with_one_line_and_no_traceback(tmp_path: Path, args: tuple[str, ...], start: str) -> None:
    done = serve(tmp_path, *(a.replace("{port}", str(free_port())) for a in args))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"authgate: configuration error: {start}"), lines[0]
    assert "(refused: `strict` is on)" in lines[0] and "Fix: " in lines[0]
