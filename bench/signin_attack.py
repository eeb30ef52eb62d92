"""How `/health` answers while 12 attackers grind sign-in (issue 11, hole 3).

    .venv/bin/python -m bench.signin_attack [--seconds 20] [--attackers 12] [--src DIR]
        [--setting NAME=VALUE …] [--label TEXT] [--write]

`authgate serve` (SQLite, defaults otherwise) runs in its own data directory. One process of
attackers signs in as fast as it can from 12 concurrent sessions with wrong passwords and a
new username every time, so no per-(account, address) or per-account limit stops them and
every attempt costs an argon2 verification (the dummy one: unknown users). Meanwhile this
process asks `GET /health` every 20 ms and records how long each answer takes; first for a
few seconds with no attacker (idle), then under the attack.

`--src DIR` runs another source tree's authgate (e.g. `git archive COMMIT src | tar -x -C
DIR`), to measure a version from before a change on the same machine the same day. `--write`
records the row in docs/benchmarks.md. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CALLBACK = "http://127.0.0.1:53999/cb"
PROBE_EVERY = 0.02


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(port: int, data_dir: Path, src: Path | None, settings: list[str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update({f"AUTHGATE_{name.upper()}": value for name, _, value in (s.partition("=") for s in settings)})
    env.update(
        {
            "AUTHGATE_DATA_DIR": str(data_dir),
            "AUTHGATE_PORT": str(port),
            "AUTHGATE_LOG_LEVEL": "warning",
            "AUTHGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
    )
    if src is not None:
        env["PYTHONPATH"] = str(src)
    proc = subprocess.Popen(
        [sys.executable, "-m", "authgate", "serve"],
        cwd=data_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("authgate did not start")


def authorization_url(base: str) -> str:
    r = httpx.post(f"{base}/register", json={"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"})
    r.raise_for_status()
    query = httpx.QueryParams(
        {
            "response_type": "code",
            "client_id": r.json()["client_id"],
            "redirect_uri": CALLBACK,
            "state": "s",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
    )
    return f"{base}/authorize?{query}"


async def _attacker(url: str, stop_at: float, counts: dict[int, int]) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        page = await http.get(url)
        fields = dict(_hidden_inputs(page.text))
        while time.monotonic() < stop_at:
            fields.update(username=f"u-{secrets.token_hex(6)}", password="wrong-password")
            r = await http.post(url.split("/authorize")[0] + "/login", data=fields)
            counts[r.status_code] = counts.get(r.status_code, 0) + 1


def _hidden_inputs(html: str) -> list[tuple[str, str]]:
    import re

    return re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html)


def attack(url: str, attackers: int, seconds: float, queue: multiprocessing.Queue[dict[int, int]]) -> None:
    counts: dict[int, int] = {}

    async def run() -> None:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(_attacker(url, stop_at, counts) for _ in range(attackers)))

    asyncio.run(run())
    queue.put(counts)


def probe(base: str, seconds: float) -> list[float]:
    """Latencies of /health in ms, one request every PROBE_EVERY seconds."""
    out: list[float] = []
    with httpx.Client(timeout=30) as http:
        stop_at = time.monotonic() + seconds
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            http.get(f"{base}/health").raise_for_status()
            out.append(1000 * (time.perf_counter() - t0))
            time.sleep(PROBE_EVERY)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--attackers", type=int, default=12)
    parser.add_argument("--src", type=Path, help="run the authgate of this source tree (its src/ dir)")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an authgate setting, e.g. max_concurrent_password_checks=2",
    )
    parser.add_argument("--label", default="", help="what is measured, for the row (e.g. a commit)")
    parser.add_argument("--write", action="store_true", help="record the result in docs/benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = start(port, Path(tmp), args.src, args.setting)
        try:
            base = f"http://127.0.0.1:{port}"
            url = authorization_url(base)
            idle = probe(base, 3)
            queue: multiprocessing.Queue[dict[int, int]] = multiprocessing.Queue()
            attackers = multiprocessing.Process(target=attack, args=(url, args.attackers, args.seconds + 1, queue))
            attackers.start()
            time.sleep(1)  # the attackers' sessions open
            busy = probe(base, args.seconds)
            counts = queue.get(timeout=120)
            attackers.join(timeout=30)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    busy.sort()
    p95 = busy[int(0.95 * (len(busy) - 1))]
    attempts = sum(counts.values()) / (args.seconds + 1)
    print(
        f"/health idle: median {statistics.median(idle):.1f} ms; under attack: {len(busy)} probes, "
        f"median {statistics.median(busy):.1f} ms, p95 {p95:.1f} ms, max {busy[-1]:.1f} ms; "
        f"sign-in answers {counts} ({attempts:.1f}/s)"
    )
    label = " ".join([args.label or "this tree", *args.setting])
    row = (
        f"| {time.strftime('%Y-%m-%d')} | {os.cpu_count()} cores | {label} | "
        f"{args.attackers} | {statistics.median(idle):.1f} | {statistics.median(busy):.1f} | {p95:.1f} | "
        f"{busy[-1]:.0f} | {attempts:.1f} |"
    )
    print(row)
    if args.write:
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text()
        marker = "<!-- signin-attack rows -->"
        doc.write_text(text.replace(marker, marker + "\n" + row))


if __name__ == "__main__":
    main()
