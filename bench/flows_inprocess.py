"""The OAuth flow in one process, for A/B comparisons and profiles of the AS (issue 18).

    .venv/bin/python -m bench.flows_inprocess [--flows 150] [--rounds 3] [--profile FILE]
    PYTHONPATH=/tmp/other/src .venv/bin/python -m bench.flows_inprocess …   # another tree
    .venv/bin/python -m bench.flows_inprocess --setting token_signing_alg=ES256   # a setting

The real app (`build_app`, its lifespan run by hand, SQLite in a temporary data directory; or
`AUTHGATE_DATABASE_URL` and `AUTHGATE_SECRET_KEY` from the environment) driven by httpx's ASGI
transport: register → authorize → consent → token (code) → token (refresh) for a signed-in
user, `--flows` in a row per round. Reported: CPU of the whole process per flow (every thread:
the flush thread's fsyncs count; the driver's share too, ~0.3 ms a request — printed as the
cost of a bare `/health` round trip); the server's share alone (CPU of the whole process while a
request is inside the app: its handler, the store, the flush it awaits; not httpx's request
building and response parsing); and per step, medians of the rounds. Less exposed to a
busy machine than `bench.flows` (no sockets, no other processes), so alternate two trees'
runs to compare them. `--profile FILE`: one more round under cProfile, timed by the loop
thread's CPU (`pstats` reads it). Not a test: nothing asserts its numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bench.flows import CALLBACK, authorize_params, pkce_pair  # the same flow as the multi-process bench

try:
    import sniffio  # noqa: F401
except ImportError:  # httpx's ASGI transport tries to import it on every request: ~0.3 ms a flow of failed imports
    sys.modules["sniffio"] = None  # type: ignore[assignment]  # now a cheap ImportError

BASE = "http://127.0.0.1:9"
STEPS = ("register", "authorize", "consent", "code", "refresh")
_HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"')
SETTINGS = {  # the flow, not the limiter (bench/flows.py's)
    "AUTHGATE_REGISTRATIONS_PER_MINUTE": "100000000",
    "AUTHGATE_MAX_CLIENTS": "100000000",
    "AUTHGATE_MAX_UNVERIFIED_CLIENTS": "100000",
    "AUTHGATE_LOG_LEVEL": "warning",
    "AUTHGATE_PUBLIC_URL": BASE,
}


class _Timed:
    """The app, with the process CPU spent inside its calls added up (the server's share)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cpu = 0.0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.process_time()
        try:
            await self.app(scope, receive, send)
        finally:
            self.cpu += time.process_time() - started


async def _register(http: httpx.AsyncClient) -> str:
    body = {"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", "client_name": "bench"}
    r = await http.post("/register", json=body)
    if r.status_code != 201:
        raise RuntimeError(f"register: HTTP {r.status_code} {r.text[:300]}")
    return str(r.json()["client_id"])


async def _flow(http: httpx.AsyncClient, steps: dict[str, list[float]]) -> None:
    verifier, challenge = pkce_pair()
    clock = time.process_time
    t0 = clock()
    client_id = await _register(http)
    t1 = clock()
    r = await http.get("/authorize", params=authorize_params(client_id, challenge))
    fields = dict(_HIDDEN.findall(r.text))
    t2 = clock()
    r = await http.post("/consent", data={**fields, "decision": "allow"})
    code = parse_qs(urlsplit(r.headers.get("location", "")).query).get("code")
    if r.status_code != 303 or not code:
        raise RuntimeError(f"consent: HTTP {r.status_code} {r.text[:300]}")
    t3 = clock()
    form = {"grant_type": "authorization_code", "code": code[0], "code_verifier": verifier}
    r = await http.post("/token", data={**form, "redirect_uri": CALLBACK, "client_id": client_id})
    if r.status_code != 200:
        raise RuntimeError(f"code exchange: HTTP {r.status_code} {r.text[:300]}")
    t4 = clock()
    form = {"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"], "client_id": client_id}
    r = await http.post("/token", data=form)
    if r.status_code != 200:
        raise RuntimeError(f"refresh: HTTP {r.status_code} {r.text[:300]}")
    t5 = clock()
    for step, spent in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
        steps[step].append(spent)


async def _run(flows: int, rounds: int, password: str, profile: Path | None) -> dict[str, Any]:
    from authgate.config.settings import load_settings
    from authgate.server.app import build_app
    from authgate.server.logs import configure_logging

    settings = load_settings(None)
    configure_logging("warning", settings.log_format)
    app = build_app(settings)
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await to_app.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, to_app.get, from_app.put)
    )
    started = await from_app.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"start-up failed: {started.get('message', '')[-2000:]}")
    timed = _Timed(app)
    transport = httpx.ASGITransport(app=timed, client=("127.0.0.1", 5555))
    result: dict[str, Any] = {"rounds": []}
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        page = await http.get("/authorize", params=authorize_params(await _register(http), pkce_pair()[1]))
        fields = {**dict(_HIDDEN.findall(page.text)), "username": "bench", "password": password}
        if (await http.post("/login", data=fields)).status_code not in (200, 303):  # the one argon2
            raise RuntimeError("sign-in failed")
        warm: dict[str, list[float]] = {s: [] for s in STEPS}
        for _ in range(20):
            await _flow(http, warm)
        for _ in range(rounds):
            steps: dict[str, list[float]] = {s: [] for s in STEPS}
            cpu, inside = time.process_time(), timed.cpu
            for _ in range(flows):
                await _flow(http, steps)
            result["rounds"].append(
                {
                    "cpu_ms_per_flow": 1000 * (time.process_time() - cpu) / flows,
                    "server_ms_per_flow": 1000 * (timed.cpu - inside) / flows,
                    "steps": {s: 1000 * statistics.median(v) for s, v in steps.items()},
                }
            )
        cpu = time.process_time()
        for _ in range(flows):
            await http.get("/health")
        result["health_ms"] = 1000 * (time.process_time() - cpu) / flows
        if profile is not None:
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            for _ in range(flows):
                await _flow(http, {s: [] for s in STEPS})
            profiler.disable()
            profiler.dump_stats(str(profile))
    await to_app.put({"type": "lifespan.shutdown"})
    await from_app.get()
    await lifespan
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=150, help="flows per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="cProfile stats of one more round (loop thread CPU)")
    parser.add_argument(
        "--setting", action="append", default=[], metavar="NAME=VALUE", help="e.g. token_signing_alg=ES256"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-inprocess-") as tmp:
        os.environ.update(SETTINGS)
        os.environ.update({f"AUTHGATE_{k.strip().upper()}": v for k, _, v in (s.partition("=") for s in args.setting)})
        os.environ.setdefault("AUTHGATE_DATA_DIR", str(Path(tmp) / "data"))
        password = secrets.token_urlsafe(16)
        subprocess.run(
            [sys.executable, "-m", "authgate", "users", "add", "bench", "--password-stdin"],
            input=password + "\n",
            text=True,
            check=True,
            capture_output=True,
            timeout=120,
        )
        result = asyncio.run(_run(args.flows, args.rounds, password, args.profile))
    rounds = result["rounds"]
    per_step = {s: statistics.median(r["steps"][s] for r in rounds) for s in STEPS}
    each = ", ".join(f"{r['cpu_ms_per_flow']:.2f}" for r in rounds)
    median = statistics.median(r["cpu_ms_per_flow"] for r in rounds)
    server = statistics.median(r["server_ms_per_flow"] for r in rounds)
    print(
        f"load {os.getloadavg()[0]:.1f}; CPU per flow (driver included) {median:.2f} ms (rounds: {each}); "
        f"inside the app {server:.2f} ms; a bare /health round trip {result['health_ms']:.3f} ms"
    )
    print("  per step (ms, median): " + ", ".join(f"{s} {v:.2f}" for s, v in per_step.items()))


if __name__ == "__main__":
    main()
