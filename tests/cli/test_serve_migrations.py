"""`authgate serve` on a schema not at head: a child process upgrades it before the server
opens it (store/sql/upgrade_child.py); the child's failure is the server's one-line refusal."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support.authgate_server import AuthgateServer

CLI_TIMEOUT = 60


def test_a_schema_a_newer_authgate_migrated_is_refused_in_one_line(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path)
    server.add_user()  # migrated to head
    with sqlite3.connect(server.data_dir / "authgate.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    done = subprocess.run(
        [sys.executable, "-m", "authgate", "serve"],
        env=server.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "newer authgate" in done.stderr, done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr  # one line


def test_a_server_restarted_after_its_first_start_serves_from_the_same_database(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path)
    server.start()  # empty data directory: the child migrates, the server creates the admin
    server.stop()
    listed = server.cli("users", "list")
    assert listed.returncode == 0 and "admin" in listed.stdout, listed.stderr
    server.start()  # at head now: opened directly, no child
    server.stop()


def test_two_servers_started_at_once_on_an_empty_database_both_serve(tmp_path: Path) -> None:
    # each finds the schema behind head and runs a child; the children take the migration
    # lock in turn and the second finds the schema at head
    first = AuthgateServer(tmp_path / "a")
    second = AuthgateServer(tmp_path / "b", extra_env={"AUTHGATE_DATA_DIR": str(first.data_dir)})
    with ThreadPoolExecutor(2) as pool:
        started = [pool.submit(server.start) for server in (first, second)]
        try:
            for future in started:
                future.result(timeout=CLI_TIMEOUT * 2)
        finally:
            first.stop()
            second.stop()
    listed = first.cli("users", "list")
    assert listed.returncode == 0 and "admin" in listed.stdout, listed.stderr
