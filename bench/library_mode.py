"""Section 1 of `python -m bench all`: library mode.

The same `mcp` SDK echo app (bench/apps.py: `MCPServer`, stateless, JSON answers) served by
uvicorn on CPU 0 and loaded by `wrk -t2 -c32` on CPU 1, five ways, at protocol 2025-11-25
and at 2026-07-28 (per-request `_meta`, no handshake):

- bare;
- behind `authgate.protect` (guard, per-operation policy, audit trail), a client_credentials
  token from its embedded AS;
- behind authgate's guard alone (bench/apps.py swaps the policy layer out);
- behind the SDK's own bearer auth (`RequireAuthMiddleware` + a `TokenVerifier` over the same
  joserfc verification authgate uses, per request: bench/sdk_servers.py);
- FastMCP 4.2.3 with its `JWTVerifier` (bench/peers/fastmcp_server.py, in the FastMCP venv).

The last two verify an RS256 JWT the bench signs (bench/tokens.py: signed_jwt). Besides req/s,
each server's CPU per request (utime + stime from /proc over the measured run, divided by the
requests wrk counted): at a load average above ~2 the req/s of one server spread more between
rounds than the kinds differ, CPU per request much less (docs/benchmarks.md §1). Every server
runs with authgate's collector settings (`gc_tuning`; BENCH_GC=default: CPython's defaults).
"""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench import common
from bench.common import Table, fmt, median, ratio
from bench.tokens import machine_token, signed_jwt

KINDS = ("bare", "authgate", "guard", "sdk-jwt", "fastmcp-jwt")
CONNECTIONS = 32


@dataclass
class Results:
    rps: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    cpu: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # server CPU µs per request
    refused: dict[tuple[str, str], str] = field(default_factory=dict)


def _argv(kind: str, port: int, data: Path, pem: Path | None) -> list[str]:
    issuer, audience = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/mcp"
    py = sys.executable
    if kind in ("bare", "authgate", "guard"):
        return [py, "-m", "bench.apps", kind, str(port), str(data)]
    if kind == "sdk-jwt":
        return [py, "-m", "bench.sdk_servers", "bearer", str(port), str(pem), issuer, audience]
    peer = str(common.ROOT / "bench" / "peers" / "fastmcp_server.py")
    return [str(common.bench_python()), peer, "jwt", str(port), str(pem), issuer, audience]


def one_round(results: Results, seconds: float, warmup: float, workdir: Path) -> None:
    procs, urls, tokens = {}, {}, {}
    for kind in KINDS:  # started at once, unpinned; pinned to CPU 0 once listening
        port = common.free_port()
        data = workdir / kind
        data.mkdir()
        pem = None
        if kind.endswith("-jwt"):
            tokens[kind], pem = signed_jwt(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/mcp", workdir)
        procs[kind] = common.spawn(_argv(kind, port, data, pem), log=workdir / f"{kind}.log")
        urls[kind] = f"http://127.0.0.1:{port}"
    try:
        for kind, proc in procs.items():
            common.wait_for_port(int(urls[kind].rsplit(":", 1)[1]), proc, f"library-mode server {kind}")
            common.pin(proc, "0")
        with ThreadPoolExecutor() as pool:  # each is an `authgate clients add` process, then /token
            made = {kind: pool.submit(machine_token, urls[kind], workdir / kind) for kind in ("authgate", "guard")}
            tokens.update({kind: future.result() for kind, future in made.items()})
        for protocol in common.PROTOCOLS:  # interleaved: each server in turn, each protocol
            for kind in KINDS:
                headers, body = common.mcp_call(protocol)
                if kind in tokens:
                    headers["Authorization"] = f"Bearer {tokens[kind]}"
                url = urls[kind] + "/mcp"
                why = common.refusal(url, headers, body)
                if why is not None:
                    results.refused[(kind, protocol)] = why
                    continue
                script = common.wrk_script(workdir, body, headers)
                if warmup:
                    common.wrk(url, script, seconds=warmup, connections=CONNECTIONS, cpu="1")
                pid = procs[kind].pid
                cpu0 = common.cpu_seconds(pid)
                run = common.wrk(url, script, seconds=seconds, connections=CONNECTIONS, cpu="1")
                used = common.cpu_seconds(pid) - cpu0
                results.rps.setdefault((kind, protocol), []).append(run.rps)
                per = used / run.requests * 1e6 if run.requests else float("nan")
                results.cpu.setdefault((kind, protocol), []).append(per)
    finally:
        for proc in procs.values():
            common.stop(proc)


def run(rounds: int, seconds: float, warmup: float) -> Results:
    results = Results()
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-library-") as tmp:
            one_round(results, seconds, warmup, Path(tmp))
    return results


TABLE = Table(
    "library",
    "Library mode: tools/call req/s (wrk -t2 -c32 on CPU 1, server on CPU 0)",
    [
        "run",
        "protocol",
        "bare",
        "authgate (whole stack)",
        "guard alone",
        "SDK bearer + JWT",
        "FastMCP JWTVerifier",
        "whole/bare (≥ 0.95)",
        "whole/SDK JWT (≥ 1.2)",
        "whole/FastMCP (≥ 2)",
        "server CPU µs/req: bare / whole / guard / SDK JWT / FastMCP",
        "whole/bare by CPU",
    ],
)


def rows(results: Results, run_cell: str) -> Table:
    table = Table(TABLE.key, TABLE.title, TABLE.columns)
    for protocol in common.PROTOCOLS:
        med = {k: median(results.rps.get((k, protocol), [])) for k in KINDS}

        def cell(kind: str, protocol: str = protocol, med: dict[str, float] = med) -> str:
            why = results.refused.get((kind, protocol))
            return f"cannot run: {why}" if why else fmt(med[kind])

        whole = med["authgate"]
        table.add(
            run_cell,
            protocol,
            *(cell(k) for k in KINDS),
            ratio(whole, med["bare"]),
            ratio(whole, med["sdk-jwt"]),
            ratio(whole, med["fastmcp-jwt"]),
            " / ".join(fmt(median(results.cpu.get((k, protocol), []))) for k in KINDS),
            ratio(median(results.cpu.get(("bare", protocol), [])), median(results.cpu.get(("authgate", protocol), []))),
        )
    return table
