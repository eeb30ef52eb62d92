"""authgate in external mode, in-process: `build_app` under uvicorn in a thread (lifespan on,
support.authgate_server.serve_asgi_in_thread), protecting the built-in `whoami` server."""

from __future__ import annotations

from dataclasses import dataclass

from authgate.config.settings import Settings


@dataclass(frozen=True)
class ExternalAuthgate:
    url: str
    settings: Settings

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"
