"""Issue 13: the line `authgate serve` prints as it starts names what it protects — the HTTP
upstream (its password and query values masked), the stdio server's program (never its
arguments or environment, where secrets live) or the built-in knowledge base. A real
`authgate serve` in front of a stdio server: tests/integration/test_stdio_whoami.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authgate.cli.banner import start_banner
from authgate.config.settings import load_settings
from support import requirements as req


def _banner(tmp_path: Path, **overrides: object) -> str:
    return start_banner(load_settings(data_dir=tmp_path, public_url="https://mcp.example.com", **overrides))


@pytest.mark.requirement(req.ISSUE13_BANNER_NAMES_UPSTREAM)
def test_the_banner_names_each_kind_of_upstream_without_its_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("AUTHGATE_")]:
        monkeypatch.delenv(name)
    http = _banner(tmp_path, upstream="https://upstream.internal:9000/mcp?api_key=s3cret&v=2")
    assert "protecting the MCP server at https://upstream.internal:9000/mcp?api_key=***&v=***" in http
    assert "s3cret" not in http

    stdio = _banner(tmp_path, upstream_command=["/usr/local/bin/files-server", "--token", "s3cret", "/srv"])
    assert "protecting the stdio MCP server 'files-server'" in stdio
    assert "s3cret" not in stdio and "/srv" not in stdio

    builtin = _banner(tmp_path)
    assert "protecting the built-in knowledge base" in builtin
    assert builtin.startswith("authgate ") and "MCP endpoint https://mcp.example.com/mcp" in builtin
