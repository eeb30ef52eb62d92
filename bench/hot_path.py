"""What authgate's layers cost in process, with no server and no network: µs of CPU per call
and the coroutine frames between the server and the app.

    .venv/bin/python -m bench.hot_path [--seconds 2] [--rounds 5] [--apps noop,suspend,sdk] [--metrics]
        [--protocol 2025-11-25|2026-07-28] [--guard] [--beside] [--profile FILE]

Each app is called directly over ASGI, one call after another on one event loop (uvloop, as
`authgate serve` runs), bare and behind `authgate.protect()` (the whole stack: guard, policy,
audit, request log) with a real access token from the embedded AS; rounds alternate bare and
protected. Reported: CPU µs per call of the serving thread (`thread_time`) and of the whole
process (the audit writer's thread included), medians over the rounds.

The call is the bench's stateless `tools/call` (`bench.common.mcp_call`) at `--protocol`: at
2025-11-25 the version header alone, at 2026-07-28 the per-request `_meta` envelope and the
`Mcp-Method`/`Mcp-Name` headers. `--guard` adds a third kind, authgate with the guard alone
(the gate's policy enforcer taken out after start-up, as `bench/apps.py guard` does), in the
same interleaved rounds. `--profile FILE` then runs the whole stack once more under cProfile
(`seconds` long) and writes its stats to FILE (`python -m pstats FILE`).
`--beside` adds two more kinds for each app but `noop`: per iteration, the whole stack in front
of the no-op app and then the *bare* app ("beside"), against the bare no-op app and then the
bare app ("pair"); beside − pair is what authgate's code costs run next to the app's call
without touching its request (its own cost plus the app's call made slower by it: colder
caches; docs/benchmarks.md §1, fifth pass).

- `noop` answers at once: the layers' own cost.
- `suspend` suspends 15 times before answering (`asyncio.sleep(0)`): every suspension
  resumes through the frames above the app, so (suspend − noop) / 15 is the cost of one
  suspension; the frames are counted from inside the app at its first suspension.
- `sdk` is the `mcp` SDK's stateless JSON app with one `echo` tool (bench/apps.py).

`--metrics` turns the Prometheus metrics on (a `metrics_listen` on a free loopback port, never
scraped): their cost per call is the difference to a run without it.

Not a test; no assertion on a number. The gc settings are authgate's `gc_tuning` for both.
The loop never waits on I/O, so the audit writer's thread gets the GIL only every switch
interval and may fall behind (its drops are logged): the serving thread's µs stay right, the
process's understate the writer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

PORT = 8123
ORIGIN = f"http://127.0.0.1:{PORT}"
ANSWER = b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}],"isError":false}}'
SUSPENSIONS = 15

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
_frames: list[int] = []


def _depth() -> int:
    """Python frames from the caller up to `_drive` (exclusive)."""
    frame, n = sys._getframe(2), 0
    while frame is not None and frame.f_code.co_name != "_drive":
        n, frame = n + 1, frame.f_back
    return n


async def _answer(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": ANSWER})


async def noop_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    while (await receive()).get("more_body"):
        pass
    await _answer(send)


async def suspend_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    while (await receive()).get("more_body"):
        pass
    if not _frames:
        _frames.append(_depth())
    for _ in range(SUSPENSIONS):
        await asyncio.sleep(0)
    await _answer(send)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


class Call:
    """The request every call makes: the body and headers of `bench.common.mcp_call`."""

    body = b""
    headers: list[tuple[bytes, bytes]] = []

    @classmethod
    def at(cls, protocol: str) -> None:
        from bench.common import mcp_call

        named, text = mcp_call(protocol)
        cls.body = text.encode()
        cls.headers = [(b"host", f"127.0.0.1:{PORT}".encode()), (b"user-agent", b"bench")]
        cls.headers += [(k.lower().encode(), v.encode()) for k, v in named.items()]
        cls.headers.append((b"content-length", str(len(cls.body)).encode()))


def _scope(token: str | None) -> dict[str, Any]:
    headers = list(Call.headers)
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", PORT),
        "state": {},
    }


async def _drive(app: ASGI, token: str | None) -> int:
    """One request, as a server would make it; returns the status."""
    sent = False
    status = 0
    never = asyncio.get_running_loop().create_future()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": Call.body, "more_body": False}
        await never
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(token), receive, send)
    await asyncio.sleep(0)  # one turn of the loop per request, as a server's I/O makes (and the GIL is let go)
    return status


class Lifespan:
    def __init__(self, app: ASGI) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> None:
        self.task = asyncio.create_task(self.app({"type": "lifespan", "state": {}}, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        reply = await self.outbox.get()
        assert reply["type"] == "lifespan.startup.complete", reply

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        await self.task


def _token(app: ASGI, data_dir: Path) -> Awaitable[str]:
    done = subprocess.run(
        [sys.executable, "-m", "authgate", "clients", "add", "bench", "--grant", "client_credentials"]
        + ["--scopes", "mcp", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    fields = dict(line.split("\t", 1) for line in done.stdout.splitlines())

    async def fetch() -> str:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
            r = await http.post(
                "/token", data={"grant_type": "client_credentials"}, auth=(fields["client_id"], fields["client_secret"])
            )
            return str(r.json()["access_token"])

    return fetch()


async def _measure(
    app: ASGI, token: str | None, seconds: float, before: tuple[tuple[ASGI, str | None], ...] = ()
) -> tuple[float, float]:
    """Calls one after another for `seconds` (long enough for the audit trail's batches to be
    written inside the window): CPU µs per call of this thread and of the process. `before`:
    calls made ahead of each call (counted in its µs)."""
    if before:
        app = _after(before, app)
    for _ in range(200):  # warm
        await _drive(app, token)
    t0, p0, w0 = time.thread_time(), time.process_time(), time.monotonic()
    calls = 0
    while time.monotonic() - w0 < seconds:
        for _ in range(100):
            status = await _drive(app, token)
        calls += 100
    t1, p1 = time.thread_time(), time.process_time()
    if status != 200:
        raise SystemExit(f"the app answered {status}")
    return 1e6 * (t1 - t0) / calls, 1e6 * (p1 - p0) / calls


def _after(before: tuple[tuple[ASGI, str | None], ...], app: ASGI) -> ASGI:
    """`app` called with the scope `_drive` makes, each of `before` driven first."""

    async def both(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for other, token in before:
            await _drive(other, token)
        await app(scope, receive, send)

    return both


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sdk_app() -> ASGI:
    from bench.apps import mcp_app

    return mcp_app()  # type: ignore[no-any-return]


async def run(
    apps: list[str],
    seconds: float,
    rounds: int,
    metrics: bool = False,
    guard: bool = False,
    profile: str | None = None,
    beside: bool = False,
) -> dict[str, Any]:
    import authgate
    from authgate.server.heap import settle_after_startup

    makers = {"noop": lambda: noop_app, "suspend": lambda: suspend_app, "sdk": _sdk_app}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in apps:
            extra = {"metrics_listen": f"127.0.0.1:{_free_port()}"} if metrics else {}
            kinds: dict[str, Any] = {"bare": makers[name]()}
            kinds["authgate"] = authgate.protect(
                makers[name](), public_url=ORIGIN, data_dir=Path(tmp) / name, log_level="warning", **extra
            )
            if guard:
                kinds["guard"] = authgate.protect(
                    makers[name](), public_url=ORIGIN, data_dir=Path(tmp) / f"{name}-guard", log_level="warning"
                )
            lives = [Lifespan(app) for app in kinds.values()]
            for life in lives:
                await life.start()
            tokens: dict[str, str | None] = {
                "bare": None,
                "authgate": await _token(kinds["authgate"], Path(tmp) / name),
            }
            if guard:
                kinds["guard"].protected.enforcer = None  # the guard alone, as bench/apps.py guard
                tokens["guard"] = await _token(kinds["guard"], Path(tmp) / f"{name}-guard")
            before: dict[str, tuple[tuple[ASGI, str | None], ...]] = {}
            if beside and name != "noop":
                gated = authgate.protect(
                    noop_app, public_url=ORIGIN, data_dir=Path(tmp) / f"{name}-beside", log_level="warning"
                )
                lives.append(Lifespan(gated))
                await lives[-1].start()
                kinds["beside"] = kinds["pair"] = kinds["bare"]
                tokens["pair"] = tokens["beside"] = None
                before = {"beside": ((gated, await _token(gated, Path(tmp) / f"{name}-beside")),)}
                before["pair"] = ((noop_app, None),)
            settle_after_startup()
            frames = {}
            if name == "suspend":
                for label, app in kinds.items():
                    _frames.clear()
                    await _drive(app, tokens[label])
                    frames[label] = _frames[0]
            runs: dict[str, list[tuple[float, float]]] = {label: [] for label in kinds}
            for _ in range(rounds):
                for label, app in kinds.items():
                    runs[label].append(await _measure(app, tokens[label], seconds, before.get(label, ())))
            if profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
                await _measure(kinds["authgate"], tokens["authgate"], seconds)
                profiler.disable()
                profiler.dump_stats(f"{profile}.{name}" if len(apps) > 1 else profile)
            for life in reversed(lives):
                await life.stop()
            results[name] = {
                label: {
                    "thread_us": round(statistics.median(r[0] for r in rs), 1),
                    "process_us": round(statistics.median(r[1] for r in rs), 1),
                }
                for label, rs in runs.items()
            } | ({"frames": frames} if frames else {})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="per app, kind and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--apps", default="noop,suspend,sdk")
    parser.add_argument("--metrics", action="store_true", help="with the Prometheus metrics on")
    parser.add_argument("--protocol", default="2025-11-25", help="2025-11-25 or 2026-07-28")
    parser.add_argument("--guard", action="store_true", help="authgate with the guard alone, too")
    parser.add_argument("--beside", action="store_true", help="authgate's code run beside the bare app, too")
    parser.add_argument("--profile", help="cProfile the whole stack once more, stats to this file")
    args = parser.parse_args()
    Call.at(args.protocol)
    logging.basicConfig(level=logging.WARNING)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    results = runner(
        run(args.apps.split(","), args.seconds, args.rounds, args.metrics, args.guard, args.profile, args.beside)
    )
    for name, r in results.items():
        b, a = r["bare"], r["authgate"]
        extra = (
            f"  frames above the app: bare {r['frames']['bare']}, authgate {r['frames']['authgate']}"
            if "frames" in r
            else ""
        )
        g = r.get("guard")
        alone = f"  guard {g['thread_us']:7.1f} µs (+{g['thread_us'] - b['thread_us']:.1f})" if g else ""
        if "beside" in r:
            alone += f"  beside − pair +{r['beside']['thread_us'] - r['pair']['thread_us']:.1f}"
        print(
            f"{name:8s} bare {b['thread_us']:7.1f} µs  authgate {a['thread_us']:7.1f} µs "
            f"(+{a['thread_us'] - b['thread_us']:.1f}; process {a['process_us']:.1f}){alone}{extra}"
        )
    if "noop" in results and "suspend" in results:
        per = [
            (results["suspend"][k]["thread_us"] - results["noop"][k]["thread_us"]) / SUSPENSIONS
            for k in ("bare", "authgate")
        ]
        print(f"per suspension: bare {per[0]:.2f} µs, authgate {per[1]:.2f} µs")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
