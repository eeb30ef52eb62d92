"""Issue 13, done-when 6: the command line's rough edges, each through a real `authgate` process.

Every run here has no controlling terminal (a session of its own) and stdin from /dev/null
unless the test gives one, as in CI or a script; every wait is bounded.
"""

from __future__ import annotations

import os
import pty
import select
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer, _clean_environ
from support.ports import free_port

TIMEOUT = 60.0
DEMO = Path(__file__).resolve().parents[1] / "integration" / "stdio_servers" / "demo_server.py"


def authgate(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authgate", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        env=env or _clean_environ(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        start_new_session=True,  # no controlling terminal: /dev/tty cannot be opened
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """stderr, asserted to be one line and no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.requirement(req.ISSUE13_CLI_PORT_IN_USE)
def test_a_taken_port_stops_serve_before_start_up(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = tmp_path / "data"
        done = authgate("serve", "--port", str(port), "--data-dir", str(data))
    assert done.returncode == 2
    line = one_line_error(done)
    assert f"127.0.0.1:{port} is already in use" in line
    assert "setting 'port'" in line and "--port" in line and "AUTHGATE_PORT" in line
    assert "MCP endpoint" not in done.stderr and "Errno" not in done.stderr  # no banner, no uvicorn
    assert not data.exists()  # the start-up (database, keys, first user) did not run


@pytest.mark.requirement(req.ISSUE13_CLI_PASSWORD_WITHOUT_TTY)
def test_users_without_a_terminal_check_the_user_then_need_password_stdin(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path)  # its environment: data_dir, no user yet
    env = server.env
    done = authgate("users", "add", "bob", env=env)
    assert done.returncode == 2
    assert "no terminal" in one_line_error(done) and "--password-stdin" in done.stderr
    done = authgate("users", "add", "bob", "--password-stdin", env=env, stdin="a-long-enough-password\n")
    assert done.returncode == 0, done.stderr
    # the user is checked before any password is asked for
    done = authgate("users", "add", "bob", env=env)
    assert done.returncode == 1 and "'bob' exists" in one_line_error(done)
    done = authgate("users", "set-password", "nobody", env=env)
    assert done.returncode == 1 and "'nobody' does not exist" in one_line_error(done)
    done = authgate("users", "set-password", "bob", "--password-stdin", env=env, stdin="another-long-password\n")
    assert done.returncode == 0 and "password of bob changed" in done.stdout


@pytest.mark.requirement(req.ISSUE13_CLI_DATA_DIR_UNUSABLE)
def test_a_data_dir_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = [
        (("users", "list"), a_file, f"move the file {a_file} away"),  # data_dir is a file
        (("users", "list"), a_file / "data", f"{a_file} is a file, not a folder"),  # its parent is
        (("users", "list"), Path("/proc/authgate-data"), "a place this user may write"),  # nobody may make it
        (("kb", "list"), a_file, f"move the file {a_file} away"),
        (("serve", "--port", str(free_port())), a_file / "data", f"{a_file} is a file, not a folder"),
    ]
    for command, data_dir, fix in cases:
        done = authgate(*command, "--data-dir", str(data_dir))
        assert done.returncode == 2, done.stderr
        line = one_line_error(done)
        assert "setting 'data_dir'" in line and "--data-dir" in line and "AUTHGATE_DATA_DIR" in line
        assert fix in line
    # a folder that exists but takes no file (the loose-mode warning comes first: it is a 0555 folder)
    for command in (("users", "list"), ("kb", "list")):
        done = authgate(*command, "--data-dir", "/proc/self")
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "setting 'data_dir': cannot create the file /proc/self/" in done.stderr.splitlines()[-1]


@pytest.mark.requirement(req.ISSUE13_CLI_LIST_SETTINGS)
def test_upstream_command_on_the_command_line_runs_the_stdio_server(tmp_path: Path) -> None:
    from support.stdio_support import last_message, legacy_call, legacy_session

    server = AuthgateServer(tmp_path, serve_args=("--upstream-command", shlex.join([sys.executable, str(DEMO)])))
    server.add_user()
    server.start()
    try:
        token, _ = server.machine_token("mcp")
        session = legacy_session(server, token)
        answer = last_message(legacy_call(server, token, session, "echo", {"text": "split like a shell"}))
        assert answer["result"]["content"][0]["text"] == "split like a shell"
    finally:
        server.stop()


@pytest.mark.requirement(req.ISSUE13_CLI_LIST_SETTINGS)
def test_list_and_map_settings_as_flags(tmp_path: Path) -> None:
    from authgate.cli.main import build_parser
    from authgate.cli.settings_flags import setting_overrides
    from authgate.config.settings import load_settings

    def settings(*flags: str) -> object:
        args = build_parser().parse_args(["serve", "--data-dir", str(tmp_path), *flags])
        return load_settings(None, **setting_overrides(args))

    s = settings("--scopes", "notes.read", "--scopes", "notes.write", "--upstream-command", "npx -y 'a b'")
    assert s.scopes == ["notes.read", "notes.write"]  # type: ignore[attr-defined]
    assert s.upstream_command == ["npx", "-y", "a b"]  # type: ignore[attr-defined]
    s = settings("--scopes", '["a", "b"]', "--tool-scopes", '{"delete": ["a"]}', "--upstream-command", '["x", "-y"]')
    assert s.scopes == ["a", "b"] and s.tool_scopes == {"delete": ["a"]}  # type: ignore[attr-defined]
    assert s.upstream_command == ["x", "-y"]  # type: ignore[attr-defined]
    for bad in (["--tool-scopes", "{not json"], ["--scopes", "[1,"], ["--upstream-command", "unclosed 'quote"]):
        done = authgate("serve", "--data-dir", str(tmp_path), *bad)
        assert done.returncode == 2 and "Traceback" not in done.stderr and bad[0] in done.stderr


@pytest.mark.requirement(req.ISSUE13_CLI_OWN_HELP)
def test_subcommand_help_lists_its_own_options_and_serve_shows_defaults() -> None:
    for command in (("users", "add"), ("kb", "add"), ("audit",), ("db", "upgrade")):
        done = authgate(*command, "--help")
        assert done.returncode == 0
        options = [w for w in done.stdout.split() if w.startswith("--")]
        assert "--data-dir" in options and "--upstream-command" not in options, done.stdout
        assert len(set(options)) < 15, done.stdout  # it listed ~80 settings of serve before
    done = authgate("serve", "--help")
    assert "--upstream-command" in done.stdout
    assert "(default: 8000)" in done.stdout and "(default: 127.0.0.1)" in done.stdout
    assert '(default: ["mcp"])' in done.stdout


@pytest.mark.requirement(req.ISSUE13_CLI_KB_ADD_REPORT)
def test_kb_add_says_what_it_indexed_and_shows_progress_only_on_a_terminal(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"page{i}.md").write_text(f"# Page {i}\n\nwords {i}\n")
    (docs / "huge.md").write_bytes(b"x" * (5 * 1024 * 1024 + 1))  # over MAX_FILE_BYTES: skipped
    data = ["--data-dir", str(tmp_path / "data")]
    done = authgate("kb", "add", "mydocs", str(docs), *data)
    assert done.returncode == 0, done.stderr
    assert f"knowledge base mydocs: 3 documents, 3 passages from 1 folder, 1 file skipped; index: {tmp_path}" in (
        done.stdout
    )
    assert "skipped huge.md" in done.stdout and f"folder docs: {docs}" in done.stdout
    assert done.stderr == ""  # piped: no progress line

    (docs / "page9.md").write_text("# Page 9\n")
    err = _stderr_on_a_terminal(["kb", "reindex", "mydocs", *data])
    assert "\r" in err and "mydocs: 1 files examined" in err and err.endswith("\r\x1b[K")


def _stderr_on_a_terminal(args: list[str]) -> str:
    """Run authgate with stderr on a pseudo-terminal (stdout piped); what it wrote there."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "authgate", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=_clean_environ(),
        start_new_session=True,
    )
    os.close(follower)
    chunks = []
    try:
        proc.communicate(timeout=TIMEOUT)
        while select.select([leader], [], [], 1.0)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the writer is gone and all was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    assert proc.returncode == 0
    return b"".join(chunks).decode()


@pytest.mark.requirement(req.ISSUE13_FIRST_PASSWORD_ONE_TIME)
def test_the_first_password_file_goes_once_the_password_is_changed(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path)  # no user: serve creates admin and the file
    first = server.data_dir / "initial-admin-password"
    server.start()
    server.stop()
    assert first.is_file()
    done = authgate("users", "set-password", "admin", "--password-stdin", env=server.env, stdin="my-own-password-1\n")
    assert done.returncode == 0, done.stderr
    assert not first.exists() and f"removed {first}" in done.stdout
    # a file left behind whose password no longer works goes at the next start
    first.write_text("a-password-that-is-not-admins\n")
    first.chmod(0o600)
    server.start()
    server.stop()
    assert not first.exists()
