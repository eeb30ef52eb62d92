"""Section 4 of `python -m bench all`: memory and start-up.

- RSS of `authgate serve` (embedded: the AS, the whoami tool and the knowledge base, SQLite)
  and of `authgate serve --upstream` (gateway mode, in front of bench/gateway.py's echo
  upstream): idle, `settle` seconds after /health first answers; then after `requests`
  MCP calls (embedded: `list_knowledge_bases` at 2026-07-28, stateless; gateway: the echo
  `tools/call` at 2025-11-25), sent 8 at a time with a client_credentials token.
- Wall time of `authgate --version` and `authgate users list` (a data directory made first).

Each round starts fresh processes on empty data directories (so each is a first start:
`authgate serve` upgrades the new SQLite file in a child process before it serves); medians
over rounds (the requests: the first round only).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import common
from bench.common import Table, fmt, median
from bench.tokens import machine_token

MODES = ("embedded", "gateway")
MODE_TEXT = {
    "embedded": "`authgate serve` (embedded + knowledge base)",
    "gateway": "`authgate serve --upstream` (gateway)",
}
TARGET_MB = {"embedded": 90, "gateway": 60}
COMMANDS = {"--version": ["--version"], "users list": ["users", "list"]}
TARGET_S = {"--version": "≤ 0.2 s", "users list": "—"}


@dataclass
class Results:
    idle: dict[str, list[float]] = field(default_factory=dict)
    after: dict[str, list[float]] = field(default_factory=dict)
    requests: int = 0
    wall: dict[str, list[float]] = field(default_factory=dict)


def _request(mode: str, token: str) -> tuple[dict[str, str], str, str]:
    if mode == "embedded":
        headers, body = common.mcp_call("2026-07-28", "list_knowledge_bases", {})
        return headers | {"Authorization": f"Bearer {token}"}, body, "knowledge_bases"
    headers, body = common.mcp_call("2025-11-25")
    return headers | {"Authorization": f"Bearer {token}"}, body, '"hi"'


def _spawn(mode: str, workdir: Path, upstream_port: int | None) -> tuple[subprocess.Popen[bytes], str, Path]:
    port, data = common.free_port(), workdir / f"{mode}-data"
    env = common.clean_env(AUTHGATE_PORT=str(port), AUTHGATE_DATA_DIR=str(data), AUTHGATE_LOG_LEVEL="warning")
    if upstream_port is not None:
        env["AUTHGATE_UPSTREAM"] = f"http://127.0.0.1:{upstream_port}/mcp"
    proc = common.spawn([sys.executable, "-m", "authgate", "serve"], env=env, log=workdir / f"{mode}.log")
    return proc, f"http://127.0.0.1:{port}", data


def _healthy(mode: str, proc: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise common.BenchError(f"authgate serve ({mode}) exited with {proc.returncode}:{common.log_tail(proc)}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise common.BenchError(f"authgate serve ({mode}) did not answer /health within 60 s")
        time.sleep(0.05)


def one_round(results: Results, requests: int, settle: float, workdir: Path) -> None:
    up_port = common.free_port()
    upstream = common.spawn([sys.executable, "-m", "bench.gateway", "upstream", str(up_port)])
    try:
        common.wait_for_port(up_port, upstream, "upstream")
        servers = {mode: _spawn(mode, workdir, up_port if mode == "gateway" else None) for mode in MODES}
        for mode, (proc, base, _) in servers.items():
            _healthy(mode, proc, base)
        time.sleep(settle)
        for mode, (proc, _, _) in servers.items():
            results.idle.setdefault(mode, []).append(common.rss_mb(proc.pid))
        if requests:  # the first round only: 100 k requests take minutes, and RSS after them is steady
            with ThreadPoolExecutor() as pool:  # each is an `authgate clients add` process, then /token
                tokens = {mode: pool.submit(machine_token, base, data) for mode, (_, base, data) in servers.items()}
            for mode, (proc, base, _) in servers.items():
                headers, body, expect = _request(mode, tokens[mode].result())
                common.send(f"{base}/mcp", headers, body, requests, expect=expect)
                results.after.setdefault(mode, []).append(common.rss_mb(proc.pid))
            results.requests = requests
        for proc, _, _ in servers.values():
            common.stop(proc)
    finally:
        common.stop(upstream)
    # the embedded server's data directory: made and migrated, as a deployment's would be
    env = common.clean_env(AUTHGATE_DATA_DIR=str(workdir / "embedded-data"))
    for name, args in COMMANDS.items():
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "authgate", *args], env=env, capture_output=True, check=True)
        results.wall.setdefault(name, []).append(time.perf_counter() - start)


def run(rounds: int, requests: int, settle: float) -> Results:
    results = Results()
    for i in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
            one_round(results, requests if i == 0 else 0, settle, Path(tmp))
    return results


MEMORY = Table(
    "memory",
    "Memory: RSS of authgate serve, idle and after N MCP requests (MB)",
    ["run", "server", "idle RSS after start", "target idle", "requests", "RSS after", "growth"],
)
STARTUP = Table("startup", "Start-up: wall time of a command (s)", ["run", "command", "wall time", "target"])


def rows(results: Results, run_cell: str) -> list[Table]:
    memory = Table(MEMORY.key, MEMORY.title, MEMORY.columns)
    for mode in MODES:
        idle, after = median(results.idle.get(mode, [])), median(results.after.get(mode, []))
        memory.add(
            run_cell,
            MODE_TEXT[mode],
            fmt(idle, 1),
            f"≤ {TARGET_MB[mode]}",
            fmt(results.requests),
            fmt(after, 1),
            f"{after - idle:+.1f}",
        )
    startup = Table(STARTUP.key, STARTUP.title, STARTUP.columns)
    for name in COMMANDS:
        startup.add(run_cell, f"`authgate {name}`", f"{median(results.wall.get(name, [])):.3f}", TARGET_S[name])
    return [memory, startup]
