"""Public URL canonicalization, well-known derivation and settings validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from authgate.config.settings import load_settings
from authgate.config.urls import PublicUrls, canonicalize_public_url
from authgate.errors import ConfigError
from support import requirements as req


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("HTTPS://MCP.Example.COM/", "https://mcp.example.com"),
        ("https://mcp.example.com:443/api/", "https://mcp.example.com/api"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("http://localhost:8000//", "http://localhost:8000"),
        ("https://[2001:db8::1]:8443/x", "https://[2001:db8::1]:8443/x"),
    ],
)
def test_public_url_is_canonicalized_once(raw: str, canonical: str) -> None:
    assert canonicalize_public_url(raw) == canonical


@pytest.mark.requirement(req.OAUTH21_1_5_TLS)
@pytest.mark.parametrize("raw", ["http://mcp.example.com", "http://10.0.0.1:8000"])
def test_plain_http_is_refused_off_loopback(raw: str) -> None:
    with pytest.raises(ValueError, match="HTTPS is required"):
        canonicalize_public_url(raw)


@pytest.mark.parametrize("raw", ["https://h/x?q=1", "https://h/#f", "ftp://h", "https://user:pw@h"])
def test_public_url_rejects_query_fragment_scheme_and_credentials(raw: str) -> None:
    with pytest.raises(ValueError):
        canonicalize_public_url(raw)


@pytest.mark.requirement(req.RFC8414_3_1_PATH_INSERTION)
def test_well_known_urls_use_path_insertion() -> None:
    urls = PublicUrls("https://h.example/tenant")
    assert urls.as_metadata_url == "https://h.example/.well-known/oauth-authorization-server/tenant"
    assert urls.prm_url == "https://h.example/.well-known/oauth-protected-resource/tenant/mcp"
    assert urls.prm_root_url == "https://h.example/.well-known/oauth-protected-resource"
    assert urls.resource == "https://h.example/tenant/mcp"
    root = PublicUrls("https://h.example")
    assert root.as_metadata_url == "https://h.example/.well-known/oauth-authorization-server"
    assert root.prm_url == "https://h.example/.well-known/oauth-protected-resource/mcp"


def test_wrong_setting_names_the_setting_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(public_url="http://mcp.example.com", data_dir=tmp_path)
    assert err.value.setting == "public_url"
    assert "HTTPS" in err.value.problem and "https://" in err.value.fix


def test_postgres_without_secret_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(database_url="postgresql+asyncpg://u@h/db", data_dir=tmp_path)
    assert err.value.setting == "secret_key"
    assert "AUTHGATE_SECRET_KEY" in err.value.fix


def test_database_url_without_async_driver_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(database_url="postgresql://u@h/db", data_dir=tmp_path, secret_key="x" * 32)
    assert err.value.setting == "database_url"


def test_toml_env_and_overrides_layer_in_that_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "authgate.toml"
    config.write_text('port = 9100\naccess_token_ttl = 600\nscopes = ["notes.read", "notes.write"]\n')
    monkeypatch.setenv("AUTHGATE_ACCESS_TOKEN_TTL", "700")
    s = load_settings(config, data_dir=tmp_path, code_ttl=30)
    assert (s.port, s.access_token_ttl, s.code_ttl) == (9100, 700, 30)
    assert s.scopes == ["notes.read", "notes.write"]
    assert s.public_url == "http://127.0.0.1:9100"  # default follows the port


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    config = tmp_path / "authgate.toml"
    config.write_text("acces_token_ttl = 600\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config, data_dir=tmp_path)
    assert err.value.setting == "acces_token_ttl"
    assert "not a known setting" in str(err.value)


def test_offline_access_cannot_be_a_resource_scope(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(scopes=["mcp", "offline_access"], data_dir=tmp_path)
    assert err.value.setting == "scopes"


@pytest.mark.parametrize(
    ("grants", "named"),
    [
        (["authorization_code", "client_credentials"], "operator"),
        (["authorization_code", "implicit"], "implicit"),
    ],
)
def test_dcr_grant_types_allow_only_grants_with_a_user(tmp_path: Path, grants: list[str], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(dcr_grant_types=grants, data_dir=tmp_path)
    assert err.value.setting == "dcr_grant_types" and named in err.value.problem
    assert "authgate clients add" in err.value.fix
