"""`authgate clients`: the machine client's scopes, and what reaches the operator's terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from authgate.cli.machine_clients import client_scopes
from authgate.cli.main import build_parser
from authgate.cli.output import printable
from authgate.config.settings import load_settings
from authgate.errors import ConfigError


def test_scopes_are_split_deduplicated_and_must_be_offered(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, tool_scopes={"delete": ["kb.admin"]})
    assert client_scopes(settings, ["mcp, kb.admin", "mcp"]) == ["mcp", "kb.admin"]
    with pytest.raises(ConfigError) as err:
        client_scopes(settings, ["mcp admin"])
    assert err.value.setting == "--scopes" and "admin" in err.value.problem and "kb.admin" in err.value.fix
    with pytest.raises(ConfigError):
        client_scopes(settings, ["offline_access"])


def test_add_takes_the_clients_scopes_not_the_scopes_setting() -> None:
    args = build_parser().parse_args(
        ["clients", "add", "backup", "--grant", "client_credentials", "--scopes", "mcp", "--data-dir", "/tmp/x"]
    )
    assert args.client_scopes == ["mcp"] and getattr(args, "scopes", None) is None
    with pytest.raises(SystemExit):  # only client_credentials: open grants need no operator
        build_parser().parse_args(["clients", "add", "x", "--grant", "authorization_code", "--scopes", "mcp"])


def test_a_client_name_cannot_drive_the_terminal() -> None:
    assert printable("evil\x1b]0;pwned\x07\nname") == "evil\\x1b]0;pwned\\x07\\x0aname"
