"""What the HTTP gateway costs: a trivial MCP tools/call, direct vs through `authgate serve
--upstream`.

    .venv/bin/python -m bench.gateway [--seconds 10] [--connections 32] [--rounds 3] [--write]

The upstream (an `mcp` SDK `MCPServer` with an `echo` tool, stateless, JSON answers, SDK
logging at WARNING; bench/apps.py) runs on CPU 0, authgate (the gateway) on CPU 1, and
`wrk -t2 -cN` on CPU 1 with it, so the gateway pays for the load generator's CPU too.
"direct" sends wrk at the upstream; "gateway" at authgate with a real access token
(client_credentials), i.e. guard + policy + audit + proxy; "proxy" at `HttpUpstreamProxy`
alone under uvicorn (no authentication), to show what the proxy itself costs. Reported:
the median requests/s of each, the gateway/direct ratio, and CPU per request of the
process in front (utime+stime from /proc/<pid>/stat over the measured run, divided by the
requests wrk counted; upstream likewise). Rounds are interleaved so drift on the machine
hits all alike. `--write` adds a row to docs/benchmarks.md. Not a test.

    python -m bench.gateway upstream PORT            (used by the above: the upstream)
    python -m bench.gateway proxy PORT UPSTREAM_PORT (used by the above: the bare proxy)
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.tokens import machine_token

ROOT = Path(__file__).resolve().parents[1]
BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}'
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    rps: float
    requests: int
    front_us: float | None  # CPU per request of the gateway or bare proxy
    upstream_us: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (proc(5) fields 14, 15)


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{what} did not start")


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "bench.gateway", "upstream", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc, "upstream")
    return proc


def start_front(kind: str, port: int, upstream_port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    """authgate --upstream (kind "gateway") or the bare proxy (kind "proxy"), on CPU 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(
        AUTHGATE_PORT=str(port),
        AUTHGATE_DATA_DIR=str(data_dir),
        AUTHGATE_LOG_LEVEL="warning",
        AUTHGATE_GC_TUNING="false" if os.environ.get("BENCH_GC") == "default" else "true",
        AUTHGATE_UPSTREAM=f"http://127.0.0.1:{upstream_port}/mcp",
    )
    command = (
        ["-m", "authgate", "serve"]
        if kind == "gateway"
        else ["-m", "bench.gateway", "proxy", str(port), str(upstream_port)]
    )
    proc = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc, kind)
    return proc


def wrk(url: str, headers: dict[str, str], seconds: int, connections: int, workdir: Path) -> tuple[float, int]:
    check = httpx.post(url, content=BODY, headers=headers)
    if check.status_code != 200 or '"hi"' not in check.text:
        raise SystemExit(f"sanity request to {url} failed: {check.status_code} {check.text[:300]}")
    script = workdir / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = '{BODY}'"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit("wrk saw errors:\n" + out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert rps and total, out
    return float(rps.group(1)), int(total.group(1))


def measure(kind: str, seconds: int, connections: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        up_port = free_port()
        upstream = start_upstream(up_port)
        front = None
        try:
            url, headers = f"http://127.0.0.1:{up_port}/mcp", dict(HEADERS)
            if kind != "direct":
                port = free_port()
                front = start_front(kind, port, up_port, Path(tmp) / "data")
                url = f"http://127.0.0.1:{port}/mcp"
                if kind == "gateway":
                    headers["Authorization"] = "Bearer " + machine_token(f"http://127.0.0.1:{port}", Path(tmp) / "data")
            wrk(url, headers, 2, connections, Path(tmp))  # warm-up: token cache, connection pools
            cpu0 = (cpu_seconds(front.pid) if front else 0.0, cpu_seconds(upstream.pid))
            rps, requests = wrk(url, headers, seconds, connections, Path(tmp))
            cpu1 = (cpu_seconds(front.pid) if front else 0.0, cpu_seconds(upstream.pid))
            per = [(b - a) / requests * 1e6 for a, b in zip(cpu0, cpu1, strict=True)]
            return Run(rps, requests, per[0] if front else None, per[1])
        finally:
            for proc in (front, upstream):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=15)


def serve_upstream(port: int) -> None:
    import uvicorn

    from bench.apps import mcp_app

    logging.basicConfig(level=logging.WARNING)  # the SDK's INFO logging halves throughput
    uvicorn.run(
        mcp_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",  # type: ignore[no-untyped-call]
        access_log=False,
    )


def serve_proxy(port: int, upstream_port: int) -> None:
    import uvicorn

    from authgate.gateway import HttpUpstreamProxy

    proxy = HttpUpstreamProxy(f"http://127.0.0.1:{upstream_port}/mcp")
    if os.environ.get("BENCH_GC", "tuned") != "default":  # as authgate serve does (gc_tuning)
        from authgate.server.heap import settle_after_startup

        settle_after_startup()
    uvicorn.run(proxy, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")


def main() -> None:
    if sys.argv[1:2] == ["upstream"]:
        serve_upstream(int(sys.argv[2]))
        return
    if sys.argv[1:2] == ["proxy"]:
        serve_proxy(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--write", action="store_true", help="record the result in docs/benchmarks.md")
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("taskset"):
        raise SystemExit("needs wrk and taskset (bash scripts/bench-deps.sh installs them)")
    runs: dict[str, list[Run]] = {"direct": [], "proxy": [], "gateway": []}
    for _ in range(args.rounds):
        for kind, results in runs.items():
            results.append(measure(kind, args.seconds, args.connections))
    for kind, results in runs.items():
        print(f"{kind}:", results)
    rps = {kind: statistics.median(r.rps for r in results) for kind, results in runs.items()}
    cpu = {kind: statistics.median(r.front_us or 0.0 for r in results) for kind, results in runs.items()}
    upstream_cpu = statistics.median(r.upstream_us for r in runs["direct"])
    row = (
        f"| {time.strftime('%Y-%m-%d')} | {os.cpu_count()} cores | -t2 -c{args.connections} "
        f"| {rps['direct']:.0f} | {rps['gateway']:.0f} | {rps['gateway'] / rps['direct']:.2f} "
        f"| {cpu['gateway']:.0f} µs | {rps['proxy'] / rps['direct']:.2f} | {cpu['proxy']:.0f} µs "
        f"| {upstream_cpu:.0f} µs |"
    )
    print(
        "| date | machine | wrk | direct req/s | gateway req/s | gateway/direct | gateway CPU / req "
        "| proxy alone/direct | proxy alone CPU / req | upstream CPU / req |"
    )
    print(row)
    if args.write:
        doc = ROOT / "docs" / "benchmarks.md"
        marker = "<!-- gateway rows -->"
        text = doc.read_text()
        if marker not in text:
            raise SystemExit(f"docs/benchmarks.md has no {marker} line")
        doc.write_text(text.replace(marker, marker + "\n" + row))


if __name__ == "__main__":
    main()
