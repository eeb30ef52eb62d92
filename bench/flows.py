"""Server CPU per OAuth flow of the embedded authorization server (issue 18, "an AS that costs
little per flow").

    .venv/bin/python -m bench.flows [--flows 300] [--workers 4] [--rounds 3]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5433/postgres]
        [--src DIR] [--label TEXT] [--setting NAME=VALUE …] [--profile FILE] [--json]

One flow is what a signed-in user's MCP client does to connect: POST /register (a new public
client) → GET /authorize (the consent page: a new client is never remembered) → POST /consent
(allow: a 303 to the client with a code) → POST /token (code + PKCE verifier) → POST /token
(refresh_token). The user signs in once before anything is timed, so no argon2 is measured; the
session and CSRF cookies are then shared by every driver process.

`authgate serve` runs as a subprocess (real uvicorn, SQLite in its own data directory, or a
fresh database on `--postgres`'s server, dropped after). What is measured:

- **per step**: each step run `--flows` times in a row by one driver (sequential), server CPU
  (utime + stime of the process and all its threads, from `/proc/<pid>/stat`) over the step's
  requests divided by their number; `/proc` counts clock ticks (10 ms), so a step's phase must
  last well over a second for a tight number: use ≥ 200 flows;
- **flows**: `--workers` driver processes each run whole flows back to back for `--flows`
  flows in all: server CPU per flow, flows/s, driver CPU per flow (so a saturated driver shows),
  and the server's RSS before and after.

Rounds repeat both on the same server; medians are reported. `--src DIR` runs another source
tree's authgate (`git archive COMMIT src | tar -x -C DIR`, then `--src DIR/src`), to compare a
version from before a change on the same machine in the same conditions. `--profile FILE`
records the flows phase with py-spy (`pip install py-spy`; a dev tool, not a dependency) as
collapsed stacks, and prints the top frames. Not a test, and self-contained: it imports
nothing from authgate or from tests/ (it drives a server over HTTP), so `bench/` can import
`run_flows` from any tree.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
CALLBACK = "http://127.0.0.1:53999/cb"
USERNAME = "bench"
STEPS = ("register", "authorize", "consent", "code", "refresh")
TICK = os.sysconf("SC_CLK_TCK")
# So that the flow is measured, not the limiter: registrations from one address and the
# client caps far above what a run makes (100 k flows make 100 k consented clients).
DEFAULT_SETTINGS = {
    "registrations_per_minute": "100000000",
    "max_clients": "100000000",
    "max_unverified_clients": "100000",
    "log_level": "warning",
}
DRIVERS_READY_AFTER = 3.0  # seconds from spawning the drivers to their common start (`bench all --quick`: less)
_HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"')


# -- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_cpu(pid: int) -> float:
    """Seconds of CPU the process has used, every thread (live or ended) included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def server_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def _postgres_database(server_url: str) -> Iterator[str]:
    """A fresh database on the server of `server_url` (any database of it), dropped after."""
    import asyncio

    import asyncpg  # authgate's own driver

    parts = urlsplit(server_url.replace("+asyncpg", ""))
    name = f"authgate_bench_{secrets.token_hex(4)}"
    admin = parts._replace(path="/postgres").geturl()

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield parts._replace(scheme="postgresql+asyncpg", path=f"/{name}").geturl()
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Server:
    """`authgate serve` in its own data directory, with user `bench` signed in once."""

    def __init__(self, workdir: Path, *, src: Path | None, settings: dict[str, str], database_url: str | None):
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
        env.update({f"AUTHGATE_{k.upper()}": v for k, v in settings.items()})
        env.update(
            {
                "AUTHGATE_DATA_DIR": str(workdir / "data"),
                "AUTHGATE_PORT": str(self.port),
                "AUTHGATE_PUBLIC_URL": self.url,
            }
        )
        if database_url:
            env["AUTHGATE_DATABASE_URL"] = database_url
            env.setdefault("AUTHGATE_SECRET_KEY", secrets.token_urlsafe(32))
        if src is not None:
            env["PYTHONPATH"] = str(src)
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        users = subprocess.run(
            [sys.executable, "-m", "authgate", "users", "add", USERNAME, "--password-stdin"],
            input=self.password + "\n",
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if users.returncode != 0:
            raise RuntimeError(f"`authgate users add` failed: {users.stderr}")
        self.log = (self.workdir / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "authgate", "serve"],
            cwd=self.workdir,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("authgate serve exited:\n" + (self.workdir / "serve.log").read_text()[-4000:])
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("authgate did not answer /health within 60 s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()

    def sign_in(self) -> dict[str, str]:
        """Sign in once (the only argon2 of the run); returns the cookies every driver shares."""
        with httpx.Client(base_url=self.url, timeout=60) as http:
            client_id = _register(http)
            page = http.get("/authorize", params=authorize_params(client_id, pkce_pair()[1]))
            fields = dict(_HIDDEN.findall(page.text))
            fields.update(username=USERNAME, password=self.password)
            r = http.post("/login", data=fields)
            if r.status_code != 200 or "authgate_session" not in http.cookies:
                raise RuntimeError(f"sign-in failed: HTTP {r.status_code}")
            return dict(http.cookies)


# -- one flow -----------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize_params(client_id: str, challenge: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "state": "st",
        "scope": "mcp",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


def _register(http: httpx.Client) -> str:
    body = {"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", "client_name": "bench"}
    r = http.post("/register", json=body)
    if r.status_code != 201:
        raise RuntimeError(f"register: HTTP {r.status_code} {r.text[:300]}")
    return str(r.json()["client_id"])


def _authorize(http: httpx.Client, client_id: str, challenge: str) -> dict[str, str] | str:
    """The consent form's fields; or the code itself from a server with no consent page (the
    in-memory baselines of bench/flows_compare.py redirect back with it at once)."""
    r = http.get("/authorize", params=authorize_params(client_id, challenge))
    if r.status_code in (302, 303) and (code := parse_qs(urlsplit(r.headers["location"]).query).get("code")):
        return code[0]
    fields = dict(_HIDDEN.findall(r.text))
    if r.status_code != 200 or "request" not in fields:
        raise RuntimeError(f"authorize: HTTP {r.status_code}, no consent form")
    return fields


def _consent(http: httpx.Client, fields: dict[str, str] | str) -> str:
    if isinstance(fields, str):  # no consent page: authorize gave the code (no request, none counted)
        return fields
    r = http.post("/consent", data={**fields, "decision": "allow"})
    code = parse_qs(urlsplit(r.headers.get("location", "")).query).get("code")
    if r.status_code != 303 or not code:
        raise RuntimeError(f"consent: HTTP {r.status_code} {r.text[:300]}")
    return code[0]


def _exchange(http: httpx.Client, client_id: str, code: str, verifier: str) -> str:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
    }
    r = http.post("/token", data=form)
    if r.status_code != 200:
        raise RuntimeError(f"code exchange: HTTP {r.status_code} {r.text[:300]}")
    return str(r.json()["refresh_token"])


def _refresh(http: httpx.Client, client_id: str, refresh_token: str) -> str:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    r = http.post("/token", data=form)
    if r.status_code != 200:
        raise RuntimeError(f"refresh: HTTP {r.status_code} {r.text[:300]}")
    return str(r.json()["refresh_token"])


def one_flow(http: httpx.Client) -> None:
    verifier, challenge = pkce_pair()
    client_id = _register(http)
    code = _consent(http, _authorize(http, client_id, challenge))
    _refresh(http, client_id, _exchange(http, client_id, code, verifier))


def _client(url: str, cookies: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=url, cookies=cookies, timeout=60, follow_redirects=False)


def _driver(url: str, cookies: dict[str, str], flows: int, start_at: float, out: Any) -> None:
    """One driver process: `flows` whole flows back to back; sends its CPU seconds back."""
    with _client(url, cookies) as http:
        one_flow(http)  # warm: connection open, first-request costs paid
        while time.time() < start_at:
            time.sleep(0.001)
        cpu0 = time.process_time()
        for _ in range(flows):
            one_flow(http)
        out.put(time.process_time() - cpu0)


# -- the phases ---------------------------------------------------------------------------------


def per_step(server: Server, cookies: dict[str, str], n: int) -> dict[str, dict[str, float]]:
    """Each step `n` times in a row: server CPU ms and wall ms per request."""
    out: dict[str, dict[str, float]] = {}

    @contextmanager
    def phase(step: str) -> Iterator[None]:
        cpu, wall = server_cpu(server.pid), time.perf_counter()
        yield
        out[step] = {
            "server_cpu_ms": 1000 * (server_cpu(server.pid) - cpu) / n,
            "wall_ms": 1000 * (time.perf_counter() - wall) / n,
        }

    with _client(server.url, cookies) as http:
        one_flow(http)
        pkce = [pkce_pair() for _ in range(n)]
        with phase("register"):
            clients = [_register(http) for _ in range(n)]
        with phase("authorize"):
            forms = [_authorize(http, c, ch) for c, (_, ch) in zip(clients, pkce, strict=True)]
        with phase("consent"):
            codes = [_consent(http, f) for f in forms]
        with phase("code"):
            refresh = [_exchange(http, c, code, v) for c, code, (v, _) in zip(clients, codes, pkce, strict=True)]
        with phase("refresh"):
            for c, r in zip(clients, refresh, strict=True):
                _refresh(http, c, r)
    return out


def whole_flows(server: Server, cookies: dict[str, str], flows: int, workers: int) -> dict[str, float]:
    """`flows` whole flows from `workers` driver processes at once."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + DRIVERS_READY_AFTER  # every driver spawned and warmed
    per = [flows // workers + (1 if i < flows % workers else 0) for i in range(workers)]
    procs = [ctx.Process(target=_driver, args=(server.url, cookies, k, start_at, queue)) for k in per]
    for p in procs:
        p.start()
    while time.time() < start_at:
        time.sleep(0.001)
    cpu, wall = server_cpu(server.pid), time.perf_counter()
    driver_cpu = sum(queue.get(timeout=3600) for _ in procs)
    wall, cpu = time.perf_counter() - wall, server_cpu(server.pid) - cpu
    for p in procs:
        p.join(timeout=60)
        if p.exitcode != 0:
            raise RuntimeError(f"a driver process exited with {p.exitcode}")
    return {
        "server_cpu_ms_per_flow": 1000 * cpu / flows,
        "driver_cpu_ms_per_flow": 1000 * driver_cpu / flows,
        "flows_per_s": flows / wall,
    }


@contextmanager
def _py_spy(pid: int, path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    proc = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(path), "--rate", "1000", "--gil"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attached
    try:
        yield
    finally:
        proc.send_signal(2)  # SIGINT: py-spy writes what it has
        proc.wait(timeout=60)


def top_frames(path: Path, limit: int = 25) -> list[tuple[str, float]]:
    """From py-spy's collapsed stacks: the share of samples each frame appears in (inclusive)."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        for frame in set(stack.split(";")):
            inclusive[frame] += n
    return [(frame, n / total) for frame, n in inclusive.most_common(limit)] if total else []


# -- the whole run ------------------------------------------------------------------------------


def run_flows(
    flows: int = 300,
    workers: int = 4,
    rounds: int = 3,
    *,
    postgres: str | None = None,
    src: Path | None = None,
    settings: dict[str, str] | None = None,
    profile: Path | None = None,
    steps: bool = True,
) -> dict[str, Any]:
    """Start `authgate serve` (SQLite, or a fresh database on the `postgres` server), sign in,
    then `rounds` × (per-step phases of `flows` requests each, if `steps`; `flows` whole flows
    from `workers` driver processes). Returns the medians (ms, flows/s, MB) and every round."""
    chosen = {**DEFAULT_SETTINGS, **(settings or {})}
    with tempfile.TemporaryDirectory(prefix="bench-flows-") as tmp, _database(postgres) as url:
        server = Server(Path(tmp), src=src, settings=chosen, database_url=url)
        server.start()
        try:
            cookies = server.sign_in()
            rss_start = server_rss_mb(server.pid)
            runs: list[dict[str, Any]] = []
            for i in range(rounds):
                run: dict[str, Any] = {"steps": per_step(server, cookies, flows)} if steps else {}
                with _py_spy(server.pid, profile if i == rounds - 1 else None):
                    run.update(whole_flows(server, cookies, flows, workers))
                runs.append(run)
            rss_end = server_rss_mb(server.pid)
            total = 1 + rounds * (flows * (2 if steps else 1) + workers + (1 if steps else 0))
        finally:
            server.stop()
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "python": sys.version.split()[0],
        "backend": "postgresql" if postgres else "sqlite",
        "source": str(src) if src else "this tree",
        "flows": flows,
        "workers": workers,
        "rounds": rounds,
        "settings": chosen,
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
        "flows_made": total,
        "runs": runs,
    }
    for key in ("server_cpu_ms_per_flow", "driver_cpu_ms_per_flow", "flows_per_s"):
        result[key] = statistics.median(r[key] for r in runs)
    if steps:
        result["steps"] = {
            step: {k: statistics.median(r["steps"][step][k] for r in runs) for k in ("server_cpu_ms", "wall_ms")}
            for step in STEPS
        }
        result["steps_server_cpu_ms_sum"] = sum(s["server_cpu_ms"] for s in result["steps"].values())
    return result


@contextmanager
def _database(postgres: str | None) -> Iterator[str | None]:
    if postgres is None:
        yield None
    else:
        with _postgres_database(postgres) as url:
            yield url


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['date']} {result['machine']} python {result['python']} {result['backend']} "
        f"({result['source']}): {result['flows']} flows × {result['rounds']} rounds, {result['workers']} workers",
        f"  server CPU per flow {result['server_cpu_ms_per_flow']:.2f} ms, driver CPU per flow "
        f"{result['driver_cpu_ms_per_flow']:.2f} ms, {result['flows_per_s']:.1f} flows/s; "
        f"RSS {result['rss_mb_start']:.1f} → {result['rss_mb_end']:.1f} MB after {result['flows_made']} flows",
    ]
    if "steps" in result:
        steps = ", ".join(f"{s} {v['server_cpu_ms']:.2f}" for s, v in result["steps"].items())
        lines.append(f"  per step (server CPU ms, sequential): {steps}; sum {result['steps_server_cpu_ms_sum']:.2f}")
    lines.append("  per round: " + "; ".join(f"{r['server_cpu_ms_per_flow']:.2f} ms" for r in result["runs"]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=300, help="flows per round (and requests per step phase)")
    parser.add_argument("--workers", type=int, default=4, help="driver processes running whole flows")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server (a fresh database is made on it)")
    parser.add_argument("--src", type=Path, help="run the authgate of this source tree (its src/ dir)")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE", help="an authgate setting")
    parser.add_argument("--no-steps", action="store_true", help="whole flows only")
    parser.add_argument("--profile", type=Path, help="py-spy collapsed stacks of the last round's flows")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    settings = dict(s.split("=", 1) for s in args.setting)
    result = run_flows(
        args.flows,
        args.workers,
        args.rounds,
        postgres=args.postgres,
        src=args.src,
        settings=settings,
        profile=args.profile,
        steps=not args.no_steps,
    )
    print(json.dumps(result, indent=2) if args.json else render(result))
    if args.profile is not None and args.profile.exists():
        for frame, share in top_frames(args.profile):
            print(f"  {100 * share:5.1f} %  {frame}")


if __name__ == "__main__":
    main()
