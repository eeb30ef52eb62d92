"""Every `authgate` subcommand, found by walking the parser, given bad arguments: exit status 2
and a message, never a traceback (issue 13, done-when 6).

Each leaf command runs once as a real process (in parallel, bounded), and in-process once per
kind of mistake: an unknown option, its required arguments missing, a wrong value for each of
its own typed options, and a wrong setting.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest

from authgate.cli.main import build_parser, main
from authgate.config.settings import Settings
from support import requirements as req
from support.authgate_server import _clean_environ

TIMEOUT = 90.0
SETTINGS = {*Settings.model_fields, "config"}


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command words, parser) of every command that runs something, e.g. (("users", "add"), …)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += leaves(sub, (*path, name))
    return found or [(path, parser)]


LEAVES = leaves(build_parser())


def _required_positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not a.option_strings and a.nargs not in ("?", "*", argparse.REMAINDER) and a.dest != "help"
    ]


def _has_settings(parser: argparse.ArgumentParser) -> bool:
    return any("--port" in a.option_strings for a in parser._actions)


def _placeholders(parser: argparse.ArgumentParser, value: str) -> list[str]:
    return [value] * len(_required_positionals(parser))


def _bad_arguments(parser: argparse.ArgumentParser, tmp: Path) -> list[list[str]]:
    """The mistakes to try on one command."""
    cases = [["--no-such-option"]]
    if _required_positionals(parser):
        cases.append([])
    for action in parser._actions:  # its own options (a wrong setting is the last case)
        if action.option_strings and action.nargs != 0 and action.dest not in SETTINGS:
            if action.choices is not None or action.type not in (None, str):
                cases.append([*_placeholders(parser, str(tmp)), action.option_strings[-1], "\x7fnot-valid"])
    if _has_settings(parser):
        cases.append([*_placeholders(parser, str(tmp)), "--port", "not-a-port"])
    return cases


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"serve", "users add", "users set-password", "kb add", "kb reindex", "audit", "doctor"} <= names
    assert len(names) >= 20


@pytest.mark.requirement(req.ISSUE13_CLI_BAD_ARGUMENTS_EXIT_2)
@pytest.mark.parametrize(("path", "parser"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_bad_arguments_exit_2_with_a_message(
    path: tuple[str, ...],
    parser: argparse.ArgumentParser,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTHGATE_DATA_DIR", str(tmp_path / "data"))
    for bad in _bad_arguments(parser, tmp_path):
        argv = [*path, *bad]
        try:  # any exception but SystemExit is the traceback a user would see
            code = main(argv)
        except SystemExit as exc:
            code = exc.code  # type: ignore[assignment]
        _, err = capsys.readouterr()
        assert code == 2, f"authgate {' '.join(argv)!r} exited {code}: {err}"
        assert err.strip(), f"authgate {' '.join(argv)!r} said nothing"


@pytest.mark.requirement(req.ISSUE13_CLI_BAD_ARGUMENTS_EXIT_2)
def test_every_command_as_a_process_exits_2_without_a_traceback(tmp_path: Path) -> None:
    env = {**_clean_environ(), "AUTHGATE_DATA_DIR": str(tmp_path / "data")}
    runs = {}
    for path, parser in LEAVES:
        bad = [*_placeholders(parser, str(tmp_path)), "--port", "0x"] if _has_settings(parser) else ["--no-such-option"]
        argv = [*path, *bad]
        runs[" ".join(argv)] = subprocess.Popen(
            [sys.executable, "-m", "authgate", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            start_new_session=True,
        )
    deadline = time.monotonic() + TIMEOUT
    failures = []
    for argv, proc in runs.items():
        try:
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            failures.append(f"authgate {argv}: did not exit")
            continue
        if proc.returncode != 2 or "Traceback" in err or not err.strip():
            failures.append(f"authgate {argv}: exit {proc.returncode}\n{err}")
    assert not failures, "\n".join(failures)
