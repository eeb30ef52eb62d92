"""Settings in sections: every problem reported at once, each naming its setting and its own fix;
a wrong port is a `port` problem at the real CLI; config/ imports nothing above it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from authgate.config.settings import Settings, fix_for, load_settings
from authgate.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "src" / "authgate" / "config"


def _problems(tmp_path: Path, **overrides: Any) -> dict[str, tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, data_dir=tmp_path, **overrides)
    return {p.setting: (p.problem, p.fix) for p in caught.value.problems}


def test_three_independent_mistakes_are_reported_together_each_with_its_fix(tmp_path: Path) -> None:
    problems = _problems(tmp_path, port=0, code_ttl=1, database_url="mysql://u@h/db")
    assert set(problems) == {"port", "code_ttl", "database_url"}
    assert "greater than or equal to 1" in problems["port"][0]
    assert problems["port"][1] == "use a TCP port between 1 and 65535"
    assert problems["code_ttl"][1] == "use a whole number between 10 and 600"
    assert "sqlite+aiosqlite" in problems["database_url"][1]


def test_three_cross_field_mistakes_are_reported_together(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        port=8123,
        upstream="http://127.0.0.1:8123/mcp",
        mirror_as_metadata=True,
        role_scopes={"editors": ["mcp"]},
    )
    assert set(problems) == {"upstream", "mirror_as_metadata", "role_scopes"}
    assert "own MCP endpoint" in problems["upstream"][0] and "9000" in problems["upstream"][1]
    assert "external only" in problems["mirror_as_metadata"][0] and "auth_mode" in problems["mirror_as_metadata"][1]
    assert "needs role_claim" in problems["role_scopes"][0] and "set role_claim" in problems["role_scopes"][1]


def test_field_and_cross_field_mistakes_are_reported_together(tmp_path: Path) -> None:
    problems = _problems(tmp_path, port=0, code_ttl=1, mirror_as_metadata=True)
    assert list(problems) == ["port", "code_ttl", "mirror_as_metadata"]
    assert "external only" in problems["mirror_as_metadata"][0]


def test_a_rule_that_read_a_wrong_setting_is_not_reported(tmp_path: Path) -> None:
    # auth_mode is wrong: whether the mirror or idp_preset fit it cannot be judged
    problems = _problems(
        tmp_path,
        auth_mode="bogus",
        mirror_as_metadata=True,
        idp_preset="github",
        role_claim="a..b",
        role_scopes={"x": ["mcp"]},
        code_ttl=1,
    )
    assert list(problems) == ["code_ttl", "role_claim", "auth_mode"]
    assert problems["auth_mode"][1] == "use embedded, external or proxy"


def test_several_problems_print_one_line_each(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, data_dir=tmp_path, port=0, code_ttl=1, log_level="loud")
    lines = str(caught.value).splitlines()
    assert lines[0] == "3 problems:"
    assert [line.split("'")[1] for line in lines[1:]] == ["port", "code_ttl", "log_level"]
    assert all(". Fix: " in line for line in lines[1:])
    assert caught.value.setting == "port"  # the first problem, as before


def test_every_setting_has_a_fix_of_its_own() -> None:
    fixes = {name: fix_for(name) for name in Settings.model_fields}  # KeyError: a setting without one
    assert not [name for name, fix in fixes.items() if "authgate serve --help" in fix]
    bounded = {name: fix for name, fix in fixes.items() if fix.startswith("use a whole number")}
    assert bounded["access_token_ttl"] == "use a whole number between 30 and 86400"
    assert fixes["cimd_timeout"] == "use a number greater than 0 and at most 30"
    assert fixes["list_mode"] == "use one of: filter, mark"
    assert fixes["idp_preset"].startswith('set auth_mode = "proxy"')


def test_a_port_that_is_not_a_number_is_a_port_problem(tmp_path: Path) -> None:
    problems = _problems(tmp_path, port="abc")
    assert list(problems) == ["port"]


def test_a_list_in_the_environment_that_is_not_json_names_its_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHGATE_SCOPES", "notes.read notes.write")
    problems = _problems(tmp_path)
    assert list(problems) == ["scopes"] and "AUTHGATE_SCOPES is not valid JSON" in problems["scopes"][0]


@pytest.mark.parametrize(
    ("env", "args", "problem"),
    [
        ({"AUTHGATE_PORT": "abc"}, [], "Input should be a valid integer, unable to parse string as an integer"),
        ({}, ["--port", "99999"], "Input should be less than or equal to 65535"),
    ],
)
def test_serve_with_a_wrong_port_names_port_on_one_line_and_exits_2(
    tmp_path: Path, env: dict[str, str], args: list[str], problem: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    clean.update(env, AUTHGATE_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run(
        [sys.executable, "-m", "authgate", "serve", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"authgate: configuration error: setting 'port': {problem}. Fix: use a TCP port between 1 and 65535"
    ]
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_config_imports_nothing_above_it() -> None:
    upward = []
    for module in sorted(CONFIG_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            upward += [
                f"{module.name}: {n}"
                for n in names
                # the neutral modules it needs, each importing nothing: the error tree, URL masking,
                # the bounded memo of parsed host names
                if n.startswith("authgate")
                and not n.startswith(("authgate.config", "authgate.errors", "authgate.masking", "authgate.memo"))
            ]
    assert not upward
