"""Section 3 of `python -m bench all`: OAuth flows side by side.

One flow = register → authorize → consent → token (code) → token (refresh), by a signed-in
user (no argon2 in the timed path): bench/flows.py drives it (its `Server`, `per_step`,
`whole_flows`). Four authorization servers, each a process of its own, started fresh every
round, rounds interleaved:

- authgate (`authgate serve`) on SQLite, and on PostgreSQL (a fresh database on the server of
  $AUTHGATE_TEST_POSTGRES_URL; without it the rows say "skipped: no PostgreSQL", and under
  CI=true the run fails);
- FastMCP 4.2.3's `InMemoryOAuthProvider` (bench/peers/fastmcp_server.py `oauth`, FastMCP venv);
- the MCP SDK's auth routes with an in-memory provider (bench/sdk_servers.py `as`).

The two in-memory servers have no sign-in and no consent page: their /authorize answers the
redirect with the code at once, so their "consent" step is empty and their flow is four
requests. authgate's limits are set so that the flow is measured, not the limiter (printed
in each row); the others have none.

Per step: each step `steps` times in a row by one driver, server CPU and wall time per
request. Flows: `workers` driver processes run `flows` whole flows at once: flows/s, server
CPU and driver CPU per flow. Memory: RSS after sign-in and after the round's flows; in the
full run also after 10 k and 100 k flows on one server each (`rss_checkpoints`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import common, flows
from bench.common import Table, fmt, median

KINDS = ("authgate-sqlite", "authgate-postgres", "fastmcp", "sdk")
KIND_TEXT = {
    "authgate-sqlite": "authgate, SQLite",
    "authgate-postgres": "authgate, PostgreSQL",
    "fastmcp": "FastMCP InMemoryOAuthProvider",
    "sdk": "MCP SDK auth routes + in-memory provider",
}
TARGET = {"authgate-sqlite": "≤ 0.8", "authgate-postgres": "≤ 1.5"}
# flows.DEFAULT_SETTINGS (registrations per minute, max_clients, the unverified pool) and the
# sign-in limits: the user signs in once per server, but the limits are set all the same.
SETTINGS = {**flows.DEFAULT_SETTINGS, "login_attempts_per_minute": "100000", "login_attempts_per_account": "100000"}
NO_LIMITS = "none (no limits in its auth routes)"
PG_SKIP = "skipped: no PostgreSQL"


def settings_text() -> str:
    return ", ".join(f"{k}={v}" for k, v in SETTINGS.items() if k != "log_level")


class PeerServer:
    """FastMCP's or the SDK's authorization server: `flows.Server`'s interface, no sign-in."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.port = common.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if kind == "fastmcp":
            peer = str(common.ROOT / "bench" / "peers" / "fastmcp_server.py")
            self.argv = [str(common.bench_python()), peer, "oauth", str(self.port)]
        else:
            self.argv = [sys.executable, "-m", "bench.sdk_servers", "as", str(self.port)]
        self.log = workdir / f"{kind}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = common.spawn(self.argv, log=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise common.BenchError(f"{self.argv} exited:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/.well-known/oauth-authorization-server", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise common.BenchError(f"{self.argv} did not answer within 60 s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def sign_in(self) -> dict[str, str]:
        return {}

    def stop(self) -> None:
        if self.proc is not None:
            common.stop(self.proc)


def postgres_url() -> str | None:
    url = os.environ.get("AUTHGATE_TEST_POSTGRES_URL")
    if not url and common.IN_CI:
        raise common.BenchError("CI=true and no AUTHGATE_TEST_POSTGRES_URL: the PostgreSQL rows cannot run")
    return url or None


@contextmanager
def _server(kind: str, workdir: Path, pg: str | None) -> Iterator[Any]:
    """A server of `kind`, not started; stopped (and its database dropped) on exit."""
    workdir = workdir / f"{kind}-{secrets.token_hex(3)}"
    workdir.mkdir()
    with ExitStack() as stack:
        if kind.startswith("authgate"):
            url = stack.enter_context(flows._postgres_database(pg)) if kind == "authgate-postgres" and pg else None
            server: Any = flows.Server(workdir, src=None, settings=SETTINGS, database_url=url)
        else:
            server = PeerServer(kind, workdir)
        try:
            yield server
        finally:
            if getattr(server, "proc", None) is not None:
                server.stop()


@dataclass
class Results:
    kinds: tuple[str, ...]
    steps: dict[str, list[dict[str, dict[str, float]]]] = field(default_factory=dict)
    whole: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    rss: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # (flows made, MB), first run
    workers: int = 0
    skipped: dict[str, str] = field(default_factory=dict)


def _started(kinds: tuple[str, ...], workdir: Path, pg: str | None, stack: ExitStack) -> dict[str, Any]:
    servers = {kind: stack.enter_context(_server(kind, workdir, pg)) for kind in kinds}
    with ThreadPoolExecutor(len(servers)) as pool:  # start-up is not measured: all at once
        for future in [pool.submit(s.start) for s in servers.values()]:
            future.result()
    return servers


def one_round(results: Results, steps: int, n_flows: int, workers: int, workdir: Path, pg: str | None) -> None:
    with ExitStack() as stack:
        servers = _started(results.kinds, workdir, pg, stack)
        cookies = {kind: s.sign_in() for kind, s in servers.items()}
        for kind, server in servers.items():
            first = kind not in results.rss
            rss = [(0, flows.server_rss_mb(server.pid))]
            if steps:
                results.steps.setdefault(kind, []).append(flows.per_step(server, cookies[kind], steps))
            results.whole.setdefault(kind, []).append(flows.whole_flows(server, cookies[kind], n_flows, workers))
            if first:
                rss.append((1 + 2 * steps + n_flows + workers, flows.server_rss_mb(server.pid)))
                results.rss[kind] = rss


def rss_phase(results: Results, checkpoints: list[int], workers: int, workdir: Path, pg: str | None) -> None:
    """One fresh server of each kind, RSS after sign-in and after each checkpoint's flows."""
    for kind in results.kinds:
        with ExitStack() as stack:
            server = _started((kind,), workdir, pg, stack)[kind]
            cookies = server.sign_in()
            rss, made = [(0, flows.server_rss_mb(server.pid))], 0
            for checkpoint in checkpoints:
                flows.whole_flows(server, cookies, checkpoint - made, workers)
                made = checkpoint
                rss.append((made, flows.server_rss_mb(server.pid)))
            results.rss[kind] = rss


def run(rounds: int, steps: int, n_flows: int, workers: int, checkpoints: list[int]) -> Results:
    pg = postgres_url()
    kinds = tuple(k for k in KINDS if pg or k != "authgate-postgres")
    results = Results(kinds, workers=workers)
    if not pg:
        results.skipped["authgate-postgres"] = PG_SKIP
    with tempfile.TemporaryDirectory(prefix="bench-flows-") as tmp:
        for _ in range(rounds):
            one_round(results, steps, n_flows, workers, Path(tmp), pg)
        if checkpoints:
            rss_phase(results, checkpoints, workers, Path(tmp), pg)
    return results


FLOWS = Table(
    "flows",
    "OAuth flows: whole flows from several driver processes at once",
    [
        "run",
        "server",
        "limits set",
        "drivers",
        "flows/s",
        "server CPU/flow",
        "driver CPU/flow",
        "server CPU/flow ÷ FastMCP's",
        "target",
    ],
)
STEPS = Table(
    "flow-steps",
    "OAuth flows per step, sequential: server CPU / wall time per request (ms)",
    ["run", "server", *flows.STEPS, "sum of server CPU"],
)
MEMORY = Table(
    "flow-memory",
    "OAuth flows: server RSS (MB) after sign-in and after N flows",
    ["run", "server", "after sign-in", "after flows (flows: MB)", "growth per 1 k flows", "growth over 100 k (≤ 20)"],
)


def _rss_cells(rss: list[tuple[int, float]]) -> tuple[str, str, str, str]:
    start = rss[0][1]
    after = "; ".join(f"{fmt(n)}: {mb:.1f}" for n, mb in rss[1:]) or "—"
    made, last = rss[-1]
    per_k = f"{1000 * (last - start) / made:+.3f}" if made else "—"
    at_100k = next((f"{mb - start:+.1f}" for n, mb in rss if n >= 100_000), "— (not run to 100 k)")
    return fmt(start, 1), after, per_k, at_100k


def rows(results: Results, run_cell: str) -> list[Table]:
    flows_t, steps_t, memory_t = (Table(t.key, t.title, t.columns) for t in (FLOWS, STEPS, MEMORY))
    fastmcp_cpu = median([w["server_cpu_ms_per_flow"] for w in results.whole.get("fastmcp", [])])
    for kind in KINDS:
        limits = settings_text() if kind.startswith("authgate") else NO_LIMITS
        if kind in results.skipped:
            why = results.skipped[kind]
            flows_t.add(run_cell, KIND_TEXT[kind], limits, results.workers, why, why, why, why, TARGET.get(kind, "—"))
            steps_t.add(run_cell, KIND_TEXT[kind], *([why] * (len(flows.STEPS) + 1)))
            memory_t.add(run_cell, KIND_TEXT[kind], why, why, why, why)
            continue
        whole = results.whole[kind]
        cpu = median([w["server_cpu_ms_per_flow"] for w in whole])
        flows_t.add(
            run_cell,
            KIND_TEXT[kind],
            limits,
            results.workers,
            fmt(median([w["flows_per_s"] for w in whole]), 1),
            f"{cpu:.2f} ms",
            f"{median([w['driver_cpu_ms_per_flow'] for w in whole]):.2f} ms",
            f"{cpu / fastmcp_cpu:.2f}" if fastmcp_cpu == fastmcp_cpu and fastmcp_cpu else "—",
            TARGET.get(kind, "—"),
        )
        if results.steps.get(kind):
            runs = results.steps[kind]
            cells, total = [], 0.0
            for step in flows.STEPS:
                cpu_ms = median([r[step]["server_cpu_ms"] for r in runs])
                wall_ms = median([r[step]["wall_ms"] for r in runs])
                total += cpu_ms
                empty = step == "consent" and not kind.startswith("authgate")
                cells.append("— (no consent page)" if empty else f"{cpu_ms:.2f} / {wall_ms:.2f}")
            steps_t.add(run_cell, KIND_TEXT[kind], *cells, f"{total:.2f}")
        memory_t.add(run_cell, KIND_TEXT[kind], *_rss_cells(results.rss[kind]))
    return [flows_t, steps_t, memory_t]
