"""The stdio bridge: a stdio MCP server (any command) served as Streamable HTTP at `/mcp`.

    StdioBridge(["npx", "-y", "@modelcontextprotocol/server-everything"])

A pure ASGI app meant to sit behind authgate's guard (`authgate serve -- CMD ARGS…`): it
reads the caller from the `Identity` the guard put in the scope and refuses requests
without one. Children are started per caller and never shared between callers:
- stateful clients (`initialize`, MCP 2025-03-26 … 2025-11-25): one child per session
  (legacy.py);
- stateless clients (`MCP-Protocol-Version: 2026-07-28`): children per caller, initialized
  by the bridge, with server→client requests turned into InputRequiredResults
  (stateless.py).

Lifespan: `async with bridge:` (also as `bridge.lifespan_context(app)`, which AuthgateApp
enters, or the ASGI lifespan protocol when served on its own)
starts the idle reaper; leaving it stops every child (SIGTERM, then SIGKILL after
`kill_after` seconds). `await bridge.check_ready()` says whether the command can run.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import os
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from mcp.client.stdio import get_default_environment
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import Receive, Scope, Send

from authgate.config.settings import Settings
from authgate.gateway.body import ClientGone, read_body
from authgate.gateway.drain import Drain
from authgate.gateway.errors import GatewayError, MethodNotAllowed, ParseError, error_object, send_error
from authgate.gateway.stdio.child import StdioChild
from authgate.gateway.stdio.http import accepts, header, send_json, send_status
from authgate.gateway.stdio.legacy import LegacyHandler
from authgate.gateway.stdio.pool import ChildPool, Owner
from authgate.gateway.stdio.relay import single_message
from authgate.gateway.stdio.stateless import StatelessHandler
from authgate.guard.identity import GATEWAY_ENV, SCOPE_KEY, Identity, caller_environment

if TYPE_CHECKING:
    from authgate.tracing import Tracing

__all__ = ["StdioBridge", "bridge_from_settings"]

logger = logging.getLogger("authgate.stdio")
_CALLER: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("authgate_stdio_caller", default=None)


class StdioBridge:
    """Serve the stdio MCP server `command` over Streamable HTTP, one set of children per caller.

    `env`: the children's environment. None (the default) passes authgate's own environment
    minus every `AUTHGATE_*` variable (secrets live there); a mapping is used on top of the
    MCP SDK's minimal set (HOME, PATH, …), as MCP clients do. Each child gets
    AUTHGATE_GATEWAY=stdio; with `identity_env`, also AUTHGATE_CALLER_SUBJECT,
    AUTHGATE_CALLER_CLIENT_ID and AUTHGATE_CALLER_USERNAME (the `whoami` tool reads them).

    `protocol`: what 2026-07-28 callers' children are spoken to at. "auto": 2026-07-28 when the
    command's `server/discover` lists it (the child then answers those callers itself:
    its InputRequiredResults, requestState and listen streams pass through), else 2025-11-25;
    "2025-11-25": always 2025-11-25, the bridge turning a child's requests to the client into
    InputRequiredResults (stateless.py). `spares`: processes started ahead per caller (pool.py).

    2025-11-25 sessions' streams are resumable (resume.py): `sse_retry_ms` is the `retry` of their
    priming events, `resume_window` how long a call whose connection closed waits for its client
    to resume it before it is cancelled at the child.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        path: str = "/mcp",
        max_children: int = 32,
        max_children_per_identity: int = 4,
        idle_timeout: float = 900.0,
        input_timeout: float = 300.0,
        init_timeout: float = 60.0,
        max_body: int = 4 * 1024 * 1024,
        kill_after: float = 3.0,
        identity_env: bool = False,
        call_timeout: float = 600.0,
        stream_timeout: float = 3600.0,
        protocol: str = "auto",
        spares: int = 0,
        sse_retry_ms: int = 1000,
        resume_window: float = 60.0,
    ) -> None:
        if not command:
            raise ValueError("StdioBridge needs a command to run")
        self.command = list(command)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.path = path
        self.max_body = max_body
        self.kill_after = kill_after
        self.identity_env = identity_env
        self.pool = ChildPool(
            self._spawn,
            max_children=max_children,
            max_per_identity=max_children_per_identity,
            idle_timeout=idle_timeout,
            spares=spares,
        )
        self.legacy = LegacyHandler(
            self.pool,
            init_timeout=init_timeout,
            call_timeout=call_timeout,
            stream_timeout=stream_timeout,
            sse_retry_ms=sse_retry_ms,
            resume_window=resume_window,
        )
        self.stateless = StatelessHandler(
            self.pool,
            init_timeout=init_timeout,
            input_timeout=input_timeout,
            call_timeout=call_timeout,
            stream_timeout=stream_timeout,
            protocol=protocol,
        )
        # a stop (gateway/drain.py, behind DrainGuard): listen streams end with their graceful close at once
        self.drain = Drain()
        self.drain.on_stop(self.stateless.children.subscriptions.close)
        self.drain.on_stop(self.stateless.end_listens)
        self.started = False
        self._numbers = itertools.count(1)
        self._reaper: asyncio.Task[None] | None = None
        self.tracing: Tracing | None = None  # set when otel_enabled (server/tracing.py): children trace requests

    # -- children --------------------------------------------------------------------------------

    def _spawn(self, owner: Owner) -> StdioChild:
        env = (
            get_default_environment() | self.env
            if self.env is not None
            else {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
        )
        env[GATEWAY_ENV] = "stdio"
        if self.identity_env:
            caller = _CALLER.get()  # the request that starts the child: its caller is the owner
            username = caller.username if caller is not None and caller.subject == owner.subject else None
            env |= caller_environment(owner.subject, owner.client_id, username)
        child = StdioChild(self.command, env=env, cwd=self.cwd, label=f"stdio#{next(self._numbers)}")
        child.tracing = self.tracing
        return child

    # -- lifespan ---------------------------------------------------------------------------------

    async def __aenter__(self) -> StdioBridge:
        self.started = True
        self._reaper = asyncio.create_task(self._reap_forever())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.started = False
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        count = len(self.pool.entries)
        self.stateless.close()  # listen streams end with their graceful-close result first
        await self.pool.close()
        self.stateless.suspended.clear()
        if count:
            logger.info("stdio bridge stopped %d MCP server process(es)", count)

    @contextlib.asynccontextmanager
    async def lifespan_context(self, _app: object) -> AsyncIterator[None]:
        """The same lifespan, in the shape AuthgateApp enters for its protected app."""
        async with self:
            yield

    async def _reap_forever(self) -> None:
        interval = max(1.0, min(30.0, self.pool.idle_timeout / 4, self.stateless.input_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.stateless.expire()
                await self.pool.reap()
            except Exception:
                logger.exception("stdio bridge: reaping idle MCP server processes failed")

    async def check_ready(self) -> tuple[bool, str]:
        """Readiness for /health/ready: started, and the command can be found."""
        if not self.started:
            return False, "stdio bridge not started"
        if shutil.which(self.command[0], path=(self.env or os.environ).get("PATH")) is None:
            return False, f"stdio command {self.command[0]!r} not found"
        return True, f"stdio bridge: {len(self.pool.entries)} MCP server process(es) running"

    # -- ASGI -------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            await self._http(scope, receive, send)
        except GatewayError as exc:
            await send_error(send, exc)
        except ClientGone:
            pass  # the client left while sending its body

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.__aenter__()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if path.rstrip("/") != self.path:
            await send_status(send, 404, "Not Found")
            return
        identity = scope.get(SCOPE_KEY)
        if not self.started or not isinstance(identity, Identity):
            reason = "the stdio bridge is not started" if not self.started else "no authenticated caller"
            await send_json(send, 503 if not self.started else 401, error_object(-32603, reason))
            return
        owner = Owner(identity.subject, identity.client_id)
        _CALLER.set(identity)  # this request's task only: a child it starts is told who it serves
        version = header(scope, "mcp-protocol-version")
        stateless = version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS
        method = scope.get("method", "GET")
        if method == "POST":
            await self._post(scope, receive, send, owner, stateless)
        elif method in ("GET", "DELETE") and stateless:
            # 2026-07-28 transports: no GET stream and no session to delete without a session
            await send_status(send, 405, "Method Not Allowed: 2026-07-28 clients only POST", [(b"allow", b"POST")])
        elif method == "GET":
            await self.legacy.get(scope, receive, send, owner)
        elif method == "DELETE":
            await self.legacy.delete(scope, send, owner)
        else:
            raise MethodNotAllowed(f"Method Not Allowed: {method}; use POST, GET or DELETE")

    async def _post(self, scope: Scope, receive: Receive, send: Send, owner: Owner, stateless: bool) -> None:
        content_type = (header(scope, "content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            await send_status(
                send, 415, "Unsupported Media Type: send the JSON-RPC message with Content-Type: application/json"
            )
            return
        json_ok, sse_ok = accepts(scope)
        if not (json_ok or sse_ok):
            await send_status(send, 406, "Not Acceptable: send Accept: application/json, text/event-stream")
            return
        body = await read_body(receive, self.max_body)
        if not body.strip():
            raise ParseError("Parse error: the request body is empty")
        msg = single_message(body)
        handler = self.stateless if stateless else self.legacy
        await handler.post(scope, receive, send, owner, msg)


def bridge_from_settings(settings: Settings) -> StdioBridge:
    """The bridge for `settings.upstream_command` (`authgate serve -- CMD ARGS…`)."""
    if not settings.upstream_command:
        raise ValueError("upstream_command is not set")
    return StdioBridge(
        settings.upstream_command,
        path=settings.urls.mcp_path,
        identity_env=settings.identity_headers,
        max_body=settings.mcp_max_body_bytes,
        call_timeout=settings.upstream_call_timeout,
        stream_timeout=settings.upstream_stream_timeout,
        protocol=settings.upstream_stdio_protocol,
        spares=settings.upstream_stdio_spares,
    )
