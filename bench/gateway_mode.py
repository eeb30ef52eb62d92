"""Section 2 of `python -m bench all`: the HTTP gateway.

The echo upstream (bench/gateway.py `upstream`: the `mcp` SDK app of bench/apps.py) on CPU 0;
in front of it, on CPU 1, at the same time (only one is loaded at a time):

- `authgate serve --upstream` (guard, policy, audit, proxy; a client_credentials token);
- `HttpUpstreamProxy` alone under uvicorn (bench/gateway.py `proxy`: no authentication);
- FastMCP 4.2.3's proxy, `fastmcp.server.create_proxy(URL)` (bench/peers/fastmcp_server.py);

and "direct": wrk at the upstream itself. Two placements of wrk (-t2):
(a) unpinned, (b) pinned to CPU 1 with the gateway, as bench/gateway.py does (the gateway
then pays for the load generator's CPU too). Each target at 1 and 32 connections with
`--latency`: throughput and CPU per request (utime+stime from /proc over the measured run,
divided by wrk's request count) at 32; p50/p99 added latency (target minus direct) at both.
Protocol 2025-11-25 (stateless, JSON answers).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import common
from bench.common import Table, fmt, median, ratio
from bench.tokens import machine_token

TARGETS = ("direct", "gateway", "proxy", "fastmcp")
PLACEMENTS = {"a": None, "b": "1"}  # wrk's CPUs: (a) unpinned, (b) the gateway's
PLACEMENT_TEXT = {
    "a": "(a) upstream CPU 0, gateway CPU 1, wrk unpinned",
    "b": "(b) upstream CPU 0, gateway CPU 1, wrk on CPU 1",
}
CONNECTIONS = (1, 32)
# FastMCP's proxy opens a new upstream session per request (create_proxy's default for a URL):
# ~50-60 ms of CPU each, so at 32 connections the first answers come after seconds: its runs
# there last at least 4 s, and one that still sees no answer counts as 0 req/s (under load).
MIN_SECONDS = {("fastmcp", 32): 4.0}
SLOW = {"fastmcp"}
PROTOCOL = "2025-11-25"


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    front_us: float  # CPU per request of the process wrk is sent at (direct: the upstream)
    upstream_us: float


@dataclass
class Results:
    samples: dict[tuple[str, int, str], list[Sample]] = field(default_factory=dict)  # placement, conns, target
    refused: dict[str, str] = field(default_factory=dict)

    def med(self, placement: str, conns: int, target: str, attr: str) -> float:
        return median([getattr(s, attr) for s in self.samples.get((placement, conns, target), [])])


def _fronts(up_port: int, workdir: Path) -> tuple[dict[str, subprocess.Popen[bytes]], dict[str, int]]:
    upstream = f"http://127.0.0.1:{up_port}/mcp"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    for target in TARGETS[1:]:
        port = ports[target] = common.free_port()
        log = workdir / f"{target}.log"
        if target == "gateway":
            env = common.clean_env(
                AUTHGATE_PORT=str(port),
                AUTHGATE_DATA_DIR=str(workdir / "gateway-data"),
                AUTHGATE_LOG_LEVEL="warning",
                AUTHGATE_GC_TUNING="false" if os.environ.get("BENCH_GC") == "default" else "true",
                AUTHGATE_UPSTREAM=upstream,
            )
            procs[target] = common.spawn([sys.executable, "-m", "authgate", "serve"], env=env, log=log)
        elif target == "proxy":
            argv = [sys.executable, "-m", "bench.gateway", "proxy", str(port), str(up_port)]
            procs[target] = common.spawn(argv, log=log)
        else:
            peer = str(common.ROOT / "bench" / "peers" / "fastmcp_server.py")
            procs[target] = common.spawn([str(common.bench_python()), peer, "proxy", str(port), upstream], log=log)
    return procs, ports


def one_round(results: Results, seconds: float, warmup: float, workdir: Path) -> None:
    up_port = common.free_port()
    upstream = common.spawn(
        [sys.executable, "-m", "bench.gateway", "upstream", str(up_port)], log=workdir / "upstream.log"
    )
    procs, ports = _fronts(up_port, workdir)
    try:
        common.wait_for_port(up_port, upstream, "upstream")
        common.pin(upstream, "0")
        for target, proc in procs.items():
            common.wait_for_port(ports[target], proc, f"gateway-mode {target}")
            common.pin(proc, "1")
        token = machine_token(f"http://127.0.0.1:{ports['gateway']}", workdir / "gateway-data")
        ports["direct"], procs["direct"] = up_port, upstream
        for placement, wrk_cpu in PLACEMENTS.items():
            for conns in CONNECTIONS:
                for target in TARGETS:
                    if target in results.refused:
                        continue
                    headers, body = common.mcp_call(PROTOCOL)
                    if target == "gateway":
                        headers["Authorization"] = f"Bearer {token}"
                    url = f"http://127.0.0.1:{ports[target]}/mcp"
                    why = common.refusal(url, headers, body)
                    if why is not None:
                        results.refused[target] = why
                        continue
                    script = common.wrk_script(workdir, body, headers)
                    front = procs[target].pid
                    if warmup:
                        common.wrk(url, script, seconds=warmup, connections=conns, cpu=wrk_cpu)
                        if target in SLOW:
                            common.until_idle(front)
                    cpu0 = common.cpu_seconds(front), common.cpu_seconds(upstream.pid)
                    length = max(seconds, MIN_SECONDS.get((target, conns), 0))
                    run = common.wrk(url, script, seconds=length, connections=conns, cpu=wrk_cpu)
                    cpu1 = common.cpu_seconds(front), common.cpu_seconds(upstream.pid)
                    if not run.requests and target not in SLOW:
                        raise common.BenchError(
                            f"{target}: no answer in {length:g} s (placement {placement}, -c{conns})"
                        )
                    if run.requests:
                        per = [(b - a) / run.requests * 1e6 for a, b in zip(cpu0, cpu1, strict=True)]
                        sample = Sample(run.rps, run.p50_ms, run.p99_ms, per[0], per[1])
                    else:  # every request still in flight when wrk stopped: 0 req/s, nothing else known
                        sample = Sample(0.0, *[float("nan")] * 4)
                    if target in SLOW:  # what wrk left in flight would weigh on the next run
                        common.until_idle(front)
                    results.samples.setdefault((placement, conns, target), []).append(sample)
    finally:
        for proc in [*procs.values(), upstream]:
            common.stop(proc)


def run(rounds: int, seconds: float, warmup: float) -> Results:
    results = Results()
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
            one_round(results, seconds, warmup, Path(tmp))
    return results


THROUGHPUT = Table(
    "gateway",
    "Gateway: tools/call through a proxy, wrk -t2 -c32 (req/s; CPU per request of the process in front)",
    [
        "run",
        "placement",
        "direct req/s",
        "authgate gateway req/s",
        "gateway/direct (≥ 0.9)",
        "proxy alone req/s",
        "FastMCP proxy req/s",
        "gateway CPU/req",
        "gateway/proxy alone CPU (≤ 1.2)",
        "proxy alone CPU/req",
        "FastMCP proxy CPU/req",
        "upstream CPU/req",
    ],
)
LATENCY = Table(
    "gateway-latency",
    "Gateway: added latency over direct, p50 / p99 (ms; wrk --latency)",
    [
        "run",
        "placement",
        "connections",
        "direct p50 / p99",
        "authgate gateway added (p50 ≤ 1 ms at 1)",
        "proxy alone added",
        "FastMCP proxy added",
    ],
)


def rows(results: Results, run_cell: str) -> list[Table]:
    through = Table(THROUGHPUT.key, THROUGHPUT.title, THROUGHPUT.columns)
    latency = Table(LATENCY.key, LATENCY.title, LATENCY.columns)

    def refused_or(target: str, text: str) -> str:
        return f"cannot run: {results.refused[target]}" if target in results.refused else text

    for placement in PLACEMENTS:
        m = {t: results.med(placement, 32, t, "rps") for t in TARGETS}
        cpu = {t: results.med(placement, 32, t, "front_us") for t in TARGETS}
        through.add(
            run_cell,
            PLACEMENT_TEXT[placement],
            fmt(m["direct"]),
            refused_or("gateway", fmt(m["gateway"])),
            ratio(m["gateway"], m["direct"]),
            refused_or("proxy", fmt(m["proxy"])),
            refused_or("fastmcp", fmt(m["fastmcp"])),
            f"{fmt(cpu['gateway'])} µs",
            ratio(cpu["gateway"], cpu["proxy"]),
            f"{fmt(cpu['proxy'])} µs",
            refused_or("fastmcp", f"{fmt(cpu['fastmcp'])} µs"),
            f"{fmt(results.med(placement, 32, 'direct', 'upstream_us'))} µs",
        )
        for conns in CONNECTIONS:
            base = {q: results.med(placement, conns, "direct", q) for q in ("p50_ms", "p99_ms")}

            def added(
                target: str, conns: int = conns, base: dict[str, float] = base, placement: str = placement
            ) -> str:
                p50 = results.med(placement, conns, target, "p50_ms") - base["p50_ms"]
                p99 = results.med(placement, conns, target, "p99_ms") - base["p99_ms"]
                return refused_or(target, f"{p50:+.2f} / {p99:+.2f}" if p50 == p50 else "no answer in the run")

            latency.add(
                run_cell,
                PLACEMENT_TEXT[placement],
                conns,
                f"{base['p50_ms']:.2f} / {base['p99_ms']:.2f}",
                added("gateway"),
                added("proxy"),
                added("fastmcp"),
            )
    return [through, latency]
