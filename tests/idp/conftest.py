"""Fixtures for external mode: oidc-provider as the IdP, authgate in front of `whoami`.

`idp(shape_factory, keys=None)` starts tests/node/oidc/provider.mjs (skipped without Node and
the npm peers; failed under CI=true). `external_authgate(**settings)` runs authgate in external
mode in-process under uvicorn on a loopback port (a thread; lifespan on), protecting the
built-in `whoami` server. Every wait is bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from authgate.config.settings import load_settings
from authgate.mcpapp.whoami import build_app as build_whoami
from authgate.server.app import build_app
from support.authgate_server import serve_asgi_in_thread
from support.external_gate import ExternalAuthgate
from support.idp_peers import OidcProvider, ProviderShape, require_oidc_provider, signing_key
from support.ports import free_port


@pytest.fixture
def mcp_port() -> int:
    """The port authgate will listen on (known before the IdP starts: it is the IdP's audience)."""
    return free_port()


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[Callable[..., OidcProvider]]:
    require_oidc_provider()
    providers: list[OidcProvider] = []

    def start(shape: ProviderShape, keys: list[Any] | None = None) -> OidcProvider:
        provider = OidcProvider(tmp_path / f"idp-{len(providers)}", shape, keys or [signing_key("k1")])
        providers.append(provider)
        provider.start()
        return provider

    yield start
    for provider in providers:
        provider.stop()


@pytest.fixture
def external_authgate(tmp_path: Path, mcp_port: int) -> Iterator[Callable[..., ExternalAuthgate]]:
    with ExitStack() as stack:

        def start(*, port: int | None = None, **overrides: Any) -> ExternalAuthgate:
            port = port or mcp_port
            settings = load_settings(
                None,
                public_url=f"http://127.0.0.1:{port}",
                port=port,
                data_dir=tmp_path / f"authgate-{port}",
                auth_mode="external",
                **overrides,
            )
            url = stack.enter_context(serve_asgi_in_thread(build_app(settings, build_whoami()), port, lifespan="on"))
            return ExternalAuthgate(url, settings)

        yield start
