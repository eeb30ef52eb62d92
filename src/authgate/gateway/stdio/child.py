"""One stdio MCP server process and the JSON-RPC traffic with it.

MCP stdio transport (2025-11-25 basic/transports §stdio): newline-delimited JSON-RPC on
stdin/stdout, anything on stderr is logging (here: logger `authgate.stdio`). Every request
written to the child gets an id the bridge assigns, and a `progressToken` one too, so
requests arriving over many HTTP requests (and several clients of one identity) never
collide; answers are mapped back before they leave.

Each request in flight is an `Exchange`: a queue of what the HTTP side must deliver (the
request's notifications, the child's requests to the client, then the response). What the
child sends outside any exchange goes to `unsolicited` (the legacy GET stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from authgate import metering
from authgate.gateway.errors import GatewayError, JsonRpcId
from authgate.gateway.jsonrpc import cancelled_notification
from authgate.gateway.stdio.errors import ChildExited, ChildStartFailed
from authgate.gateway.stdio.resume import CLOSE_SSE_STREAM, CloseStream, close_stream_hint
from authgate.gateway.stdio.stderr import READ_SIZE, StderrLog

if TYPE_CHECKING:
    from authgate.tracing import Tracing

__all__ = ["Cancelled", "Exchange", "Outgoing", "StdioChild", "id_key"]

logger = logging.getLogger("authgate.stdio")

MAX_LINE = 16 * 1024 * 1024  # the largest JSON-RPC message read from the child
MAX_QUEUED_NOTIFICATIONS = 1000  # per exchange, while the HTTP side is not reading
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"  # MCP 2026-07-28 subscriptions/listen frames


class Cancelled:
    """Ends an exchange without an answer (MCP cancellation: no response to a cancelled request)."""


# a message, the error that ends the exchange, its end, or a request to close its connection
Outgoing = dict[str, Any] | GatewayError | Cancelled | CloseStream


def id_key(value: Any) -> str:
    """A dict key for a JSON-RPC id that keeps 1 and "1" apart."""
    return json.dumps(value)


@dataclass(eq=False)
class Exchange:
    """One client request the child is working on."""

    child_id: int
    client_id: JsonRpcId
    method: str
    interactive: bool
    client_token: Any = None  # the client's progressToken, restored on the way out
    child_token: str | None = None
    log_level: str | None = None  # 2026-07-28 `_meta` logLevel opt-in (stateless only)
    started: float = field(default_factory=time.monotonic)
    queue: asyncio.Queue[Outgoing] = field(default_factory=asyncio.Queue)
    done: bool = False
    resumable: bool = False  # its stream can be resumed (resume.py): a CloseStream reaches it
    span: Any = None  # its upstream span, when tracing is on (authgate/tracing.py)

    def deliver(self, item: Outgoing) -> None:
        if isinstance(item, dict) and "id" not in item and self.queue.qsize() >= MAX_QUEUED_NOTIFICATIONS:
            logger.warning("dropped a %s for request %r: the client is not reading", item.get("method"), self.client_id)
            return
        self.queue.put_nowait(item)


class StdioChild:
    """A running stdio MCP server. `start()`, then `request()` / `send()`; `terminate()` ends it."""

    tracing: Tracing | None = None  # the bridge's, when otel_enabled (server/tracing.py)

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        label: str,
        on_exit: Callable[[StdioChild], None] | None = None,
    ) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.cwd = cwd
        self.label = label
        self.on_exit = on_exit
        self.unsolicited: Callable[[dict[str, Any]], None] = self._drop
        self.proc: asyncio.subprocess.Process | None = None
        self.exchanges: dict[int, Exchange] = {}
        self.server_requests: dict[str, Exchange | None] = {}  # the child's requests awaiting the client
        self.init_result: dict[str, Any] | None = None
        # MCP 2026-07-28 envelope (`_meta`) of the bridge's own requests; set when the child serves
        # 2026-07-28 itself (stateless_children.py: it answered server/discover), else None
        self.modern_meta: dict[str, Any] | None = None
        self.exited = asyncio.Event()
        self.last_used = time.monotonic()
        self._by_token: dict[str, Exchange] = {}
        self._ids = itertools.count(1)
        self._write_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def program(self) -> str:
        """The command's program name, for messages to clients (no path, no arguments)."""
        return os.path.basename(self.command[0])

    @property
    def alive(self) -> bool:
        return self.proc is not None and not self.exited.is_set()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def holds_interactive(self) -> bool:
        return any(e.interactive for e in self.exchanges.values())

    async def start(self) -> None:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                limit=MAX_LINE,
                start_new_session=True,
            )  # its own process group: terminate() reaches its children too
        except (OSError, ValueError) as exc:
            raise ChildStartFailed(f"could not start the MCP server {self.command[0]!r}: {exc}") from None
        logger.info("%s: started %s (pid %d)", self.label, " ".join(self.command), self.proc.pid)
        self._tasks = [asyncio.create_task(self._read_stdout()), asyncio.create_task(self._read_stderr())]

    # -- writing -----------------------------------------------------------------------------

    async def send(self, message: Mapping[str, Any]) -> None:
        """Write one message (a line of JSON) to the child's stdin."""
        if self.proc is None or self.proc.stdin is None or not self.alive:
            raise ChildExited(self._exit_text())
        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        async with self._write_lock:
            try:
                self.proc.stdin.write(line)
                await self.proc.stdin.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise ChildExited(f"{self._exit_text()} ({exc})") from None
        self.last_used = time.monotonic()

    async def request(
        self,
        message: Mapping[str, Any],
        *,
        interactive: bool = False,
        log_level: str | None = None,
        resumable: bool = False,
    ) -> Exchange:
        """Forward a client request under a bridge-assigned id (and progress token)."""
        child_id = next(self._ids)
        ex = Exchange(child_id, message.get("id"), str(message.get("method")), interactive, log_level=log_level)
        ex.resumable = resumable
        out = dict(message)
        out["id"] = child_id
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        if isinstance(params, dict) and isinstance(meta, dict) and "progressToken" in meta:
            ex.client_token, ex.child_token = meta["progressToken"], f"authgate-{child_id}"
            out["params"] = {**params, "_meta": {**meta, "progressToken": ex.child_token}}
            self._by_token[ex.child_token] = ex
        if self.tracing is not None:  # its span's context in params._meta.traceparent (SEP-414)
            out, ex.span = self.tracing.upstream_stdio(out, self.program)
        self.exchanges[child_id] = ex
        try:
            await self.send(out)
        except GatewayError:
            self.finish(ex)
            raise
        return ex

    def finish(self, ex: Exchange, error: str | None = None) -> None:
        """Forget an exchange (answered, or abandoned; `error`: failed so)."""
        self.exchanges.pop(ex.child_id, None)
        if ex.child_token is not None:
            self._by_token.pop(ex.child_token, None)
        if ex.span is not None and self.tracing is not None:
            span, ex.span = ex.span, None
            self.tracing.ended(span, error)

    async def cancel(self, ex: Exchange, reason: str) -> None:
        """MCP cancellation over stdio: `notifications/cancelled` names the request (basic/utilities/cancellation)."""
        if ex.child_id not in self.exchanges:
            return
        self.finish(ex)
        ex.deliver(Cancelled())  # a stream still open for it ends, unanswered
        with contextlib.suppress(GatewayError):
            await self.send(cancelled_notification(ex.child_id, reason))

    async def answer(self, request_id: Any, *, result: Any = None, error: dict[str, Any] | None = None) -> None:
        """Answer one of the child's own requests (a client's response, or the bridge's)."""
        self.server_requests.pop(id_key(request_id), None)
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if error is not None:
            reply["error"] = error
        else:
            reply["result"] = result if result is not None else {}
        await self.send(reply)

    # -- reading -----------------------------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                self._dispatch(line)
        except (ValueError, asyncio.LimitOverrunError):
            logger.error("%s: a message longer than %d bytes; stopping the server", self.label, MAX_LINE)
        except Exception:  # never let a bad message leave the child half-dead
            logger.exception("%s: reading stdout failed", self.label)
        finally:
            await self._after_exit()

    async def _read_stderr(self) -> None:
        """Read stderr to its end, whatever the log takes of it (stderr.py): a child is never
        blocked on a full pipe."""
        assert self.proc is not None and self.proc.stderr is not None
        sink = StderrLog(self.label)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            try:
                while True:
                    try:
                        chunk = await asyncio.wait_for(self.proc.stderr.read(READ_SIZE), sink.quiet_for())
                    except TimeoutError:  # quiet after a flood: say now how much was dropped
                        sink.summarize()
                        continue
                    if not chunk:
                        return
                    sink.feed(chunk)
            finally:
                sink.close()

    def _dispatch(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            logger.warning("%s: ignored a stdout line that is not JSON: %.200r", self.label, line)
            return
        if not isinstance(msg, dict):
            logger.warning("%s: ignored a stdout line that is not a JSON-RPC message", self.label)
            return
        self.last_used = time.monotonic()
        if isinstance(msg.get("method"), str):
            if "id" in msg:
                self._on_server_request(msg)
            else:
                self._on_notification(msg)
        elif "id" in msg:
            self._on_response(msg)

    def _on_response(self, msg: dict[str, Any]) -> None:
        child_id = msg.get("id")
        ex = self.exchanges.get(child_id) if isinstance(child_id, int) else None
        if ex is None:
            logger.debug("%s: dropped a response to %r (cancelled or unknown)", self.label, child_id)
            return
        self.finish(ex)
        ex.done = True
        if (meter := metering.meter) is not None:  # the child's latency (server/metrics.py)
            meter.upstream(time.monotonic() - ex.started)
        ex.deliver({**msg, "id": ex.client_id})

    def _on_notification(self, msg: dict[str, Any]) -> None:
        params = msg.get("params") if isinstance(msg.get("params"), dict) else {}
        assert isinstance(params, dict)
        target: Exchange | None
        if msg["method"] == "notifications/progress":
            target = self._by_token.get(str(params.get("progressToken")))
            if target is not None:
                msg = {**msg, "params": {**params, "progressToken": target.client_token}}
        elif msg["method"] == CLOSE_SSE_STREAM:  # the child's ask about a request's stream (resume.py)
            return close_stream_hint(self.exchanges, params, self.label)
        elif msg["method"] == "notifications/cancelled":  # the child withdrew one of its own requests
            target = self.server_requests.pop(id_key(params.get("requestId")), None)
        elif isinstance(meta := params.get("_meta"), dict) and SUBSCRIPTION_ID in meta:
            # 2026-07-28: a listen stream's frame names its listen request, by the id the child saw
            sid = meta[SUBSCRIPTION_ID]
            target = self.exchanges.get(sid) if isinstance(sid, int) else None
            if target is not None:
                msg = {**msg, "params": {**params, "_meta": {**meta, SUBSCRIPTION_ID: target.client_id}}}
        else:
            target = self._current()
        self._route(msg, target)

    def _on_server_request(self, msg: dict[str, Any]) -> None:
        target = self._current()
        self.server_requests[id_key(msg["id"])] = target
        self._route(msg, target)

    def _current(self) -> Exchange | None:
        """The exchange a message the child did not tie to a request belongs to: stdio carries
        no such tie, so the newest interactive request (tools/call, …), else the newest one."""
        if not self.exchanges:
            return None
        return max(self.exchanges.values(), key=lambda e: (e.interactive, e.started))

    def _route(self, msg: dict[str, Any], target: Exchange | None) -> None:
        if target is not None and target.child_id in self.exchanges:
            target.deliver(msg)
        else:
            self.unsolicited(msg)

    def _drop(self, msg: dict[str, Any]) -> None:
        logger.debug("%s: no stream for %s; dropped", self.label, msg.get("method"))

    # -- ending ------------------------------------------------------------------------------

    def _exit_text(self) -> str:
        code = self.returncode
        how = f"exited with status {code}" if code is not None else "is not running"
        return f"the MCP server process ({self.program}) {how}"

    async def _after_exit(self) -> None:
        """stdout closed: the child can answer nothing more. Fail what is pending, report, reap."""
        if self.exited.is_set():
            return
        await self._stop_process(grace=0.5, kill_after=2.0)
        self.exited.set()
        pending, self.exchanges = list(self.exchanges.values()), {}
        self._by_token.clear()
        if pending:
            logger.warning("%s: %s with %d request(s) pending", self.label, self._exit_text(), len(pending))
        for ex in pending:
            self.finish(ex, self._exit_text())
            ex.deliver(
                ChildExited(
                    f"{self._exit_text()} before answering; start a new session and try again", request_id=ex.client_id
                )
            )
        if self.on_exit is not None:
            self.on_exit(self)

    async def terminate(self, *, grace: float = 0.5, kill_after: float = 3.0) -> None:
        """Close stdin, then SIGTERM, then SIGKILL after `kill_after` s (2025-11-25 lifecycle §Shutdown, stdio)."""
        await self._stop_process(grace=grace, kill_after=kill_after)
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout=2.0)

    async def _stop_process(self, *, grace: float, kill_after: float) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        if await _exited_within(proc, grace):
            return
        _signal_group(proc, signal.SIGTERM)
        if await _exited_within(proc, kill_after):
            return
        logger.warning("%s: still running %.1f s after SIGTERM; sending SIGKILL", self.label, kill_after)
        _signal_group(proc, signal.SIGKILL)
        await _exited_within(proc, 2.0)


async def _exited_within(proc: asyncio.subprocess.Process, seconds: float) -> bool:
    """Poll returncode (not `wait()`, which also waits for pipes a grandchild may hold open)."""
    deadline = time.monotonic() + seconds
    while proc.returncode is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
