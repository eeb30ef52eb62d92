"""What authgate costs in library mode: throughput of a trivial MCP tools/call, bare, behind
the whole of authgate (guard, per-operation policy, audit trail), and behind the guard alone.

    .venv/bin/python -m bench.auth_overhead [--seconds 10] [--connections 32] [--write]

Each server runs alone on CPU 0 (`taskset`), wrk on CPU 1, one after the other, with the
SDK's logging at WARNING. The protected run uses a real token from the embedded AS
(client_credentials, for a machine client made with `authgate clients add`). `--write` records
the table in docs/benchmarks.md. Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.tokens import machine_token

ROOT = Path(__file__).resolve().parents[1]
BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "bench.apps", kind, str(port), str(data_dir)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{kind} server did not start")


def wrk(base: str, token: str | None, seconds: int, connections: int, workdir: Path) -> float:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    check = httpx.post(f"{base}/mcp", content=BODY, headers=headers)
    if check.status_code != 200 or '"hi"' not in check.text:
        raise SystemExit(f"sanity request failed: {check.status_code} {check.text[:200]}")
    script = workdir / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = '{BODY}'"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), f"{base}/mcp"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit("wrk saw non-2xx responses:\n" + out)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def measure(kind: str, seconds: int, connections: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = start(kind, port, Path(tmp))
        try:
            base = f"http://127.0.0.1:{port}"
            token = machine_token(base, Path(tmp)) if kind != "bare" else None
            wrk(base, token, 2, connections, Path(tmp))  # warm-up
            return wrk(base, token, seconds, connections, Path(tmp))
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--write", action="store_true", help="record the result in docs/benchmarks.md")
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("taskset"):
        raise SystemExit("needs wrk and taskset (bash scripts/bench-deps.sh installs them)")
    runs: dict[str, list[float]] = {"bare": [], "authgate": [], "guard": []}
    for _ in range(args.rounds):  # interleaved, so drift on the machine hits both alike
        for kind, results in runs.items():
            results.append(measure(kind, args.seconds, args.connections))
    print("raw req/s:", runs)
    bare, guarded = statistics.median(runs["bare"]), statistics.median(runs["authgate"])
    guard_only = statistics.median(runs["guard"])
    cost = 100 * (1 - guarded / bare)
    row = (
        f"| {time.strftime('%Y-%m-%d')} | {os.cpu_count()} cores | {args.connections} | {bare:.0f} | "
        f"{guarded:.0f} | {guarded / bare:.3f} | {cost:.1f} % | {guard_only:.0f} | "
        f"{100 * (1 - guard_only / bare):.1f} % |"
    )
    print(
        "| date | machine | connections | bare req/s | authgate req/s | ratio | cost, all layers "
        "| guard alone req/s | cost, guard alone |"
    )
    print(row)
    if args.write:
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text()
        marker = "<!-- auth-overhead rows -->"
        doc.write_text(text.replace(marker, marker + "\n" + row))


if __name__ == "__main__":
    main()
