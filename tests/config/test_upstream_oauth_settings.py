"""upstream_oauth (docs/protected-upstream.md): auto by default, off in effect beside a static
credential or in external mode; `on` refused where it cannot work; the provider name `upstream`
is the protected upstream's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authgate.config.gateway import upstream_oauth_mode, wants_connections
from authgate.config.settings import load_settings
from authgate.connections.upstream import broker_providers
from authgate.errors import ConfigError

UPSTREAM = "https://remote.example/mcp"


def test_auto_by_default_and_the_upstream_is_a_provider_of_the_mcp_kind(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path, upstream=UPSTREAM)
    assert settings.upstream_oauth == "auto" and upstream_oauth_mode(settings, settings.auth_mode) == "auto"
    assert wants_connections(settings, settings.connection_providers, settings.auth_mode)
    upstream = broker_providers(settings)["upstream"]
    assert (upstream.kind, upstream.mcp_url, upstream.client_id) == ("mcp", UPSTREAM, None)


@pytest.mark.parametrize(
    "extra",
    [
        {"upstream_bearer_token": "s3cret"},
        {"upstream_headers": {"Authorization": "Bearer s3cret"}},
        {"upstream_oauth": "off"},
    ],
)
def test_a_static_credential_or_off_leaves_the_gateway_as_it_was(tmp_path: Path, extra: dict[str, Any]) -> None:
    settings = load_settings(None, data_dir=tmp_path, upstream=UPSTREAM, **extra)
    assert upstream_oauth_mode(settings, settings.auth_mode) == "off"
    assert not wants_connections(settings, settings.connection_providers, settings.auth_mode)
    assert broker_providers(settings) == {}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"upstream": UPSTREAM, "upstream_bearer_token": "s3cret"}, "upstream_bearer_token"),
        ({}, "needs an HTTP upstream"),
    ],
)
def test_on_is_refused_where_it_cannot_work(tmp_path: Path, extra: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, data_dir=tmp_path, upstream_oauth="on", **extra)
    assert "upstream_oauth" in str(refused.value) and named in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_the_provider_name_upstream_is_the_protected_upstreams(tmp_path: Path) -> None:
    other = {"upstream": {"issuer": "https://as.example"}}
    with pytest.raises(ConfigError) as refused:
        load_settings(None, data_dir=tmp_path, upstream=UPSTREAM, connection_providers=other)
    assert "connection_providers" in str(refused.value) and "'upstream'" in str(refused.value)
    mine = {"upstream": {"kind": "mcp", "mcp_url": UPSTREAM, "client_id": "registered-there"}}
    settings = load_settings(None, data_dir=tmp_path, upstream=UPSTREAM, connection_providers=mine)
    assert broker_providers(settings)["upstream"].client_id == "registered-there"  # its client, configured
