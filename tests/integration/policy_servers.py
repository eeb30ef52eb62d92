"""Helpers for the policy integration tests: an MCP server with read/write/delete tools (seed
002's), protected in library mode and served by a real uvicorn in a thread, and tokens."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

import authgate
from support.authgate_server import add_machine_client, serve_asgi_in_thread
from support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SEED_PAGE = ROOT / "docs" / "seeds" / "002-per-tool-scopes.md"
SEED_TOOLS = ("codebase.search", "docs.create", "local_memory_search", "local_memory_store", "local_memory_delete")


def seed_config(tmp_path: Path) -> Path:
    """The TOML block of docs/seeds/002-per-tool-scopes.md, as a file."""
    blocks = re.findall(r"```toml\n(.*?)```", SEED_PAGE.read_text(), re.DOTALL)
    assert len(blocks) == 1, "the seed page must hold exactly one TOML block"
    path = tmp_path / "authgate.toml"
    path.write_text(blocks[0])
    return path


def seed_app() -> Any:
    """Seed 002's MCP server: one tool per permission, each echoing its name."""
    mcp = MCPServer("cortex")
    for name in SEED_TOOLS:
        mcp.tool(name=name, description=f"the {name} tool")(_echo(name))
    return mcp.streamable_http_app(
        streamable_http_path="/mcp", transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )


def _echo(name: str) -> Any:
    def tool(text: str = "") -> str:
        return f"{name}: done"

    return tool


@dataclass
class Protected:
    url: str
    data_dir: Path
    config_file: Path | None = None

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    @functools.cached_property
    def admin_password(self) -> str:
        # read once: the file is one-time, removed at admin's first sign-in (issue 13)
        return (self.data_dir / "initial-admin-password").read_text().strip()

    def token(self, scope: str) -> str:
        """A client_credentials access token holding `scope`, for a machine client made with
        `authgate clients add` on this app's database and settings."""
        config = ("--config", str(self.config_file)) if self.config_file else ()
        client_id, secret = add_machine_client("policy-test", scope, "--data-dir", str(self.data_dir), *config)
        r = httpx.post(
            f"{self.url}/token",
            data={"grant_type": "client_credentials", "scope": scope, "client_id": client_id, "client_secret": secret},
        )
        assert r.status_code == 200, r.text
        assert r.json()["scope"] == scope
        return str(r.json()["access_token"])


@contextmanager
def serve_protected(app: Any, data_dir: Path, config_file: Path | None = None, **settings: Any) -> Iterator[Protected]:
    """`authgate.protect(app, ...)` under uvicorn on a free loopback port, lifespan on."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    protected = authgate.protect(app, config_file=config_file, public_url=url, data_dir=data_dir, **settings)
    with serve_asgi_in_thread(protected, port, lifespan="on"):
        yield Protected(url, data_dir, config_file)
