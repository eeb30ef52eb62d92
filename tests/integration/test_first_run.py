"""What a person meets on a fresh machine: the first start, a wrong setting, the version."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import authgate
from support import requirements as req
from support.authgate_server import AuthgateServer


@pytest.mark.requirement(req.ISSUE13_FIRST_PASSWORD_ONE_TIME)
def test_first_start_creates_admin_with_a_one_time_password_file(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path)  # no user added: the server must create one
    server.start()
    try:
        password_file = server.data_dir / "initial-admin-password"
        password = password_file.read_text().strip()
        assert len(password) >= 16
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        logs = server.logs()
        assert str(password_file) in logs and password not in logs  # the path, never the secret
        assert stat.S_IMODE((server.data_dir / "secret.key").stat().st_mode) == 0o600
        (listed,) = [json.loads(line) for line in server.cli("users", "list", "--json").stdout.splitlines()]
        assert (listed["username"], listed["roles"]) == ("admin", ["admin"])  # the first user may grant every scope
        # the password works on the sign-in form
        reg = httpx.post(
            server.endpoint("register"),
            json={"redirect_uris": ["http://127.0.0.1:1/cb"], "token_endpoint_auth_method": "none"},
        ).json()
        from support.headless import authorize

        url = (
            f"{server.endpoint('authorize')}?response_type=code&client_id={reg['client_id']}"
            "&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcb&code_challenge="
            + "a" * 43
            + "&code_challenge_method=S256&state=s"
        )
        assert authorize(url, "admin", password).code
        # issue 13: one-time — used once to sign in, the file is gone (the password stays admin's)
        assert not password_file.exists()
    finally:
        server.stop()
    server.start()  # a second start creates no second admin and no new password file
    try:
        assert [line.split()[0] for line in server.cli("users", "list").stdout.splitlines()] == ["USER", "admin"]
        assert not password_file.exists()
    finally:
        server.stop()


def test_wrong_setting_stops_serve_with_the_setting_name_and_fix(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "authgate",
            "serve",
            "--public-url",
            "http://mcp.example.com",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "setting 'public_url'" in done.stderr and "HTTPS is required" in done.stderr and "Fix:" in done.stderr
    assert "Traceback" not in done.stderr


def test_version() -> None:
    done = subprocess.run([sys.executable, "-m", "authgate", "--version"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"authgate {authgate.__version__}"


def test_wrong_secret_key_is_named_at_start(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path)
    server.start()
    server.stop()
    env = {**server.env, "AUTHGATE_SECRET_KEY": "not-the-secret-the-keys-were-sealed-with"}
    done = subprocess.run(
        [sys.executable, "-m", "authgate", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "setting 'secret_key'" in done.stderr and "Traceback" not in done.stderr


def test_a_fresh_data_dir_is_private_to_its_owner(tmp_path: Path) -> None:
    """Issue 11, done-when 9: database files 0600 in a 0700 directory, from the first command
    on (`users add` creates the database before `serve` ever runs)."""
    server = AuthgateServer(tmp_path / "gate")
    fresh = tmp_path / "new" / "authgate-data"
    server.data_dir = fresh
    server.env["AUTHGATE_DATA_DIR"] = str(fresh)
    server.add_user()
    server.start()
    try:
        assert httpx.get(server.endpoint("health")).status_code == 200
    finally:
        server.stop()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in fresh.iterdir() if p.is_file()}
    assert {"authgate.db", "kb.sqlite3", "secret.key"} <= set(files), files
    assert all(mode == 0o600 for mode in files.values()), files
    assert "readable by other users" not in server.logs()


def test_a_loose_data_dir_is_named_at_start(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path)  # made by the test with the default umask: 0755
    server.data_dir.chmod(0o755)
    server.add_user()
    server.start()
    server.stop()
    assert f"chmod 700 {server.data_dir}" in server.logs()
