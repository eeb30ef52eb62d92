"""Helpers and fixtures that start real processes: authgate itself, and small loopback HTTP apps.

`authgate_factory(**extra_env)` runs `python -m authgate serve` as a subprocess in its own
data directory and port (after `users add alice --password-stdin`), waits for `/health`,
and can `kill()` / `restart()` it on the same directory and port. Its stdout/stderr go to
files under the test's tmp dir and are attached to the report of a failed test.

`free_port` gives a free loopback port; `loopback_app(app, port)` serves an ASGI app (e.g. a
CIMD document) under uvicorn in a thread for the duration of the test.

Every wait is bounded.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import ports

STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0
USERNAME = "alice"


class AuthgateStartError(RuntimeError):
    pass


class AuthgateServer:
    """One authgate subprocess bound to one data dir and port, restartable."""

    def __init__(
        self,
        workdir: Path,
        *,
        extra_env: dict[str, str] | None = None,
        username: str = USERNAME,
        password: str | None = None,
        serve_args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.serve_args = serve_args  # after `serve`, e.g. ("--", "python", "server.py")
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # as authgate makes it
        self.logs_dir = workdir / "logs"
        self.logs_dir.mkdir(exist_ok=True)
        self.port = ports.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.username = username
        self.password = password or f"pw-{secrets.token_urlsafe(12)}"
        self.env = _clean_environ()
        self.env.update(
            {
                "AUTHGATE_DATA_DIR": str(self.data_dir),
                "AUTHGATE_PORT": str(self.port),
                "AUTHGATE_PUBLIC_URL": self.url,
            }
        )
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self._log_files: list[Path] = []

    # -- URLs ------------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    def endpoint(self, name: str) -> str:
        return f"{self.url}/{name}"

    # -- lifecycle -------------------------------------------------------------------------

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `python -m authgate <args>` with this server's environment (bounded)."""
        return subprocess.run(
            [sys.executable, "-m", "authgate", *args],
            input=stdin,
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )

    def add_user(self) -> None:
        done = self.cli("users", "add", self.username, "--password-stdin", stdin=self.password + "\n")
        if done.returncode != 0:
            raise AuthgateStartError(
                f"`authgate users add {self.username}` exited {done.returncode}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )

    def add_machine_client(self, name: str, scopes: str, *, subject: str | None = None) -> tuple[str, str]:
        """`authgate clients add` on this server's database: (client_id, client_secret)."""
        return add_machine_client(name, scopes, subject=subject, env=self.env)

    def machine_token(
        self, scopes: str = "mcp", *, name: str = "test-machine", scope: str | None = None, resource: str | None = None
    ) -> tuple[str, str]:
        """(access token, client_id) of a new operator-made machine client allowed `scopes`,
        asking for `scope` (none: all it is allowed)."""
        client_id, secret = self.add_machine_client(name, scopes)
        form = {"grant_type": "client_credentials", "resource": resource or self.mcp_url}
        if scope:
            form["scope"] = scope
        r = httpx.post(self.endpoint("token"), data=form, auth=(client_id, secret), timeout=10)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"]), client_id

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        out = self.logs_dir / f"serve-{self.runs}.stdout"
        err = self.logs_dir / f"serve-{self.runs}.stderr"
        self._log_files += [out, err]
        with out.open("wb") as fo, err.open("wb") as fe:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "authgate", "serve", *self.serve_args],
                env=self.env,
                cwd=self.workdir,
                stdout=fo,
                stderr=fe,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a process group of its own, so kill() hits only it
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last: str = "no answer yet"
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AuthgateStartError(
                        f"authgate serve exited with {self.proc.returncode} before /health answered\n" + self.logs()
                    )
                try:
                    r = http.get(f"{self.url}/health")
                    if r.status_code == 200:
                        return
                    last = f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.1)
        self.stop()
        raise AuthgateStartError(
            f"authgate /health did not answer 200 within {STARTUP_TIMEOUT}s (last: {last})\n" + self.logs()
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the server's process group and wait (bounded) for it to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), escalating to SIGKILL after a bounded wait."""
        self.kill(signal.SIGTERM)

    def restart(self) -> None:
        """Stop if running, then start again on the same data dir and port."""
        self.stop()
        self.start()

    def logs_once(self, *texts: str, seconds: float = 5.0) -> str:
        """The logs once every text is in them (or as they are after `seconds`): authgate writes
        its log from a thread of its own, so a line may land just after the answer it explains."""
        deadline = time.monotonic() + seconds
        while True:
            text = self.logs()
            if all(t in text for t in texts) or time.monotonic() >= deadline:
                return text
            time.sleep(0.05)

    def logs(self) -> str:
        parts = []
        for path in self._log_files:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if text.strip():
                parts.append(f"----- {path.name} -----\n{text[-20000:]}")
        return "\n".join(parts) or "(authgate wrote nothing)"


def add_machine_client(
    name: str, scopes: str, *settings_flags: str, subject: str | None = None, env: dict[str, str] | None = None
) -> tuple[str, str]:
    """Run `authgate clients add NAME --grant client_credentials --scopes …` (open registration
    makes no machine clients) with `env` (default: no AUTHGATE_* variables) and the settings
    flags naming the database, e.g. `--data-dir DIR`: (client_id, client_secret)."""
    extra = ("--subject", subject) if subject else ()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "authgate",
            "clients",
            "add",
            name,
            "--grant",
            "client_credentials",
            "--scopes",
            scopes,
            *extra,
            *settings_flags,
        ],
        env=env or _clean_environ(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert done.returncode == 0, f"`authgate clients add` exited {done.returncode}: {done.stderr}"
    fields = dict(line.split("\t", 1) for line in done.stdout.splitlines())
    return fields["client_id"], fields["client_secret"]


def _clean_environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def serve_asgi_in_thread(app: Any, port: int | None = None, *, lifespan: str = "off") -> Iterator[str]:
    """Run an ASGI app under uvicorn on 127.0.0.1 in a daemon thread; yield its base URL. Every
    test directory uses this one (it is on the test path)."""
    import uvicorn

    port = port or ports.free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"loopback app on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT)


@pytest.fixture
def free_port() -> int:
    """A loopback port no other server in this test run was given (support.ports)."""
    return ports.free_port()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the authgate logs of a test to its report when it fails."""
    report = yield
    if report.failed:
        for server in getattr(item, "_authgate_servers", []):
            report.sections.append((f"authgate logs ({server.url})", server.logs()))
    return report


@pytest.fixture
def authgate_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., AuthgateServer]]:
    """Start authgate processes: `authgate_factory(AUTHGATE_X="y", ...)`; stopped at teardown."""
    servers: list[AuthgateServer] = []
    request.node._authgate_servers = servers

    def make(**extra_env: str) -> AuthgateServer:
        server = AuthgateServer(tmp_path / f"authgate-{len(servers)}", extra_env=extra_env)
        servers.append(server)
        server.add_user()
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def authgate(authgate_factory: Callable[..., AuthgateServer]) -> AuthgateServer:
    """authgate with default settings and user alice."""
    return authgate_factory()


@pytest.fixture
def loopback_app() -> Iterator[Callable[..., str]]:
    """Serve ASGI apps on loopback for the test: `base_url = loopback_app(app, port=None)`."""
    with ExitStack() as stack:

        def start(app: Any, port: int | None = None) -> str:
            return stack.enter_context(serve_asgi_in_thread(app, port))

        yield start
