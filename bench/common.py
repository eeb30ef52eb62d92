"""What every section of `python -m bench all` shares: the machine and versions stamp, the
processes it starts (one tree, all ended on exit), wrk with latencies, CPU and RSS from /proc,
and the rows it prints and writes to docs/benchmarks.md."""

from __future__ import annotations

import atexit
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = Path(os.environ.get("BENCH_VENV", ROOT / ".bench-venv"))
DOC = ROOT / "docs" / "benchmarks.md"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
IN_CI = os.environ.get("CI") == "true"


class BenchError(RuntimeError):
    """A benchmark that could not run: the whole run fails (loudly, also under CI)."""


# --- the stamp in every row ------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench_python() -> Path:
    """The interpreter of the separate venv that holds fastmcp (scripts/bench-deps.sh makes it)."""
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        raise BenchError(f"no {python}: run `bash scripts/bench-deps.sh` (it makes the FastMCP venv)")
    return python


def fastmcp_version() -> str:
    out = subprocess.run(
        [str(bench_python()), "-c", "from importlib.metadata import version; print(version('fastmcp'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@dataclass(frozen=True)
class Stamp:
    date: str
    machine: str
    versions: str

    @classmethod
    def now(cls) -> Stamp:
        from authgate._version import __version__

        machine = f"{os.cpu_count()} cores, {cpu_model()}"
        versions = (
            f"authgate {__version__}, mcp {version('mcp')}, fastmcp {fastmcp_version()}, "
            f"Python {platform.python_version()}"
        )
        return cls(time.strftime("%Y-%m-%d %H:%M"), machine, versions)


# --- processes -------------------------------------------------------------------------------

_started: list[subprocess.Popen[bytes]] = []
_logs: dict[int, Path] = {}  # pid → the file its output goes to


def _end_all() -> None:
    for proc in reversed(_started):
        stop(proc)


atexit.register(_end_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def spawn(
    argv: Sequence[str],
    *,
    cpu: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """A child of this process (pinned to `cpu` with taskset), ended when the run ends."""
    command = ["taskset", "-c", cpu, *argv] if cpu is not None else list(argv)
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT if log else out)
    _started.append(proc)
    if log is not None:
        _logs[proc.pid] = log
    return proc


def log_tail(proc: subprocess.Popen[bytes], chars: int = 3000) -> str:
    """The end of what `proc` printed (when spawned with a log), for an error message."""
    log = _logs.get(proc.pid)
    try:
        return "\n" + log.read_text(errors="replace")[-chars:] if log else ""
    except OSError:
        return ""


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc in _started:
        _started.remove(proc)


def clean_env(**settings: str) -> dict[str, str]:
    """The environment without the caller's AUTHGATE_* settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(settings)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} before listening:{log_tail(proc)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise BenchError(f"{what} did not listen on {port} within {timeout:.0f} s:{log_tail(proc)}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (proc(5) fields 14, 15)


def until_idle(pid: int, timeout: float = 60) -> None:
    """Wait until the process has used no CPU for 0.3 s (it is done with the requests a load
    generator left in flight), at most `timeout` seconds."""
    deadline, last = time.monotonic() + timeout, cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = cpu_seconds(pid)
        if now == last:
            return
        last = now


def rss_mb(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * PAGE_KB / 1024


def need_tools() -> None:
    missing = [tool for tool in ("wrk", "taskset") if not shutil.which(tool)]
    if missing:
        raise BenchError(f"needs {' and '.join(missing)}: run `bash scripts/bench-deps.sh`")


# --- wrk -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wrk:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency(out: str, pct: str) -> float:
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not match:
        raise BenchError(f"no {pct}% latency in wrk's output:\n{out}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def wrk_script(workdir: Path, body: str, headers: dict[str, str], stop_after: int | None = None) -> Path:
    """A wrk Lua script that POSTs `body`; with `stop_after`, each thread stops after that many
    answers (an exact count of requests, not a duration)."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items()]
    if stop_after is not None:
        lines += [
            "local done = 0",
            "function response(status, headers, body)",
            "  done = done + 1",
            f"  if done >= {stop_after} then wrk.thread:stop() end",
            "end",
        ]
    script = workdir / f"post-{abs(hash((body, tuple(headers.items()), stop_after)))}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def wrk(
    url: str,
    script: Path,
    *,
    seconds: float,
    connections: int,
    threads: int = 2,
    cpu: str | None = None,
) -> Wrk:
    threads = min(threads, connections)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "--latency"]
    argv += ["-s", str(script)]
    command = (["taskset", "-c", cpu] if cpu is not None else []) + [*argv, url]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise BenchError(f"wrk saw errors against {url}:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rps or not total:
        raise BenchError(f"unexpected wrk output:\n{out}")
    return Wrk(float(rps.group(1)), int(total.group(1)), _latency(out, "50"), _latency(out, "99"))


# --- statistics and rows ---------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median of the known values (NaN: not measured in that round); NaN if none."""
    known = [v for v in values if v == v]
    return statistics.median(known) if known else float("nan")


@dataclass
class Table:
    """One table of docs/benchmarks.md: rows go under its `<!-- bench:KEY rows -->` marker."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise BenchError(f"{self.key}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])

    @property
    def marker(self) -> str:
        return f"<!-- bench:{self.key} rows -->"

    def header(self) -> str:
        return "| " + " | ".join(self.columns) + " |\n|" + " --- |" * len(self.columns)

    def lines(self) -> list[str]:
        return ["| " + " | ".join(row) + " |" for row in self.rows]

    def render(self) -> str:
        return "\n".join([f"### {self.title}", "", self.header(), *self.lines()])


def write_tables(tables: Sequence[Table], doc: Path = DOC) -> None:
    """Each table's rows go right under its marker, newest first (the table's header is above
    the marker in the doc)."""
    text = doc.read_text()
    for table in tables:
        if table.marker not in text:
            raise BenchError(f"{doc} has no {table.marker} line")
        text = text.replace(table.marker, "\n".join([table.marker, *table.lines()]))
    doc.write_text(text)


def fmt(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "—"
    return f"{value:,.{digits}f}".replace(",", " ")


def ratio(a: float, b: float) -> str:
    return "—" if not b or a != a or b != b else f"{a / b:.2f}×"


# --- the MCP request every load sends --------------------------------------------------------

PROTOCOLS = ("2025-11-25", "2026-07-28")


def mcp_call(protocol: str, tool: str = "echo", arguments: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """Headers and body of a stateless `tools/call`. At 2025-11-25 a bare request with the
    version header (no initialize: the apps are stateless); at 2026-07-28 the per-request
    `_meta` envelope and the Mcp-Method / Mcp-Name routing headers (no handshake at all)."""
    import json

    params: dict[str, object] = {"name": tool, "arguments": arguments if arguments is not None else {"text": "hi"}}
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": protocol,
    }
    if protocol >= "2026-07-28":
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": protocol,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        headers.update({"Mcp-Method": "tools/call", "Mcp-Name": tool})
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}, separators=(",", ":"))
    return headers, body


def refusal(url: str, headers: dict[str, str], body: str, expect: str = '"hi"') -> str | None:
    """None when one request gets a 200 with `expect` in it; else why not (for the row)."""
    import httpx

    try:
        r = httpx.post(url, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if r.status_code == 200 and expect in r.text and '"isError":true' not in r.text:
        return None
    return f"HTTP {r.status_code}: {' '.join(r.text.split())[:160]}"


def pin(proc: subprocess.Popen[bytes], cpu: str) -> None:
    """Move a running process and all its threads onto `cpu` (servers start unpinned, in
    parallel, and are pinned once listening: start-up is not what is measured)."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(proc.pid)], check=True, capture_output=True)


def send(url: str, headers: dict[str, str], body: str, count: int, concurrency: int = 8, expect: str = "") -> float:
    """`count` POSTs from `concurrency` connections (aiohttp, in this process), each answer
    checked (200, `expect` in it); for a number of requests, where wrk only knows durations.
    Returns the wall seconds."""
    import asyncio

    import aiohttp

    async def go() -> None:
        left = [count]
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def worker() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    async with http.post(url, data=body.encode(), headers=headers) as r:
                        text = await r.text()
                        if r.status != 200 or expect not in text:
                            raise BenchError(f"{url}: HTTP {r.status} {text[:200]}")

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    start = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - start
