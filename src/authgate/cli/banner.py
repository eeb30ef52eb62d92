"""The line `authgate serve` prints as it starts: the version, the MCP endpoint users give their
clients, where it listens, and what it protects — without a secret in it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from authgate._version import __version__
from authgate.masking import masked_url

if TYPE_CHECKING:
    from authgate.config.settings import Settings


def protected(settings: Settings) -> str:
    """What the MCP endpoint protects. An HTTP upstream's URL is masked (a password or a query
    token never reaches the terminal); a stdio server is named by its program only, since its
    arguments may carry a secret (`--api-key …`)."""
    if settings.upstream is not None:
        return f"the MCP server at {masked_url(settings.upstream)}"
    if settings.upstream_command:
        program = os.path.basename(settings.upstream_command[0]) or settings.upstream_command[0]
        return f"the stdio MCP server {program!r} (a process per caller)"
    return "the built-in knowledge base (and whoami)"


def start_banner(settings: Settings) -> str:
    return (
        f"authgate {__version__}: MCP endpoint {settings.urls.resource} "
        f"(listening on {settings.host}:{settings.port}), protecting {protected(settings)}"
    )
