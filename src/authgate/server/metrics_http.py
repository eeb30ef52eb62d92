"""Serving the metrics: `/metrics` on a listener of its own (`MetricsListener`,
`metrics_listen`) or on the main one (`metrics_page`, `metrics_on_main`).

Either answers the Prometheus text format, and when `metrics_token` is set only to a request
carrying it as its bearer token (compared in constant time; 401 otherwise). The listener is
a second uvicorn server on the same event loop, with the main one's request-head and
connection limits (server/http_protocol.py); it serves nothing but `GET /metrics`, and its
requests are neither logged nor counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import uvicorn
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from authgate import metering
from authgate.config.metrics import listen_address
from authgate.errors import ConfigError

if TYPE_CHECKING:
    from authgate.config.settings import Settings
    from authgate.server.app import AuthgateApp
    from authgate.server.metrics import Metrics

__all__ = ["MetricsListener", "bound_socket", "metrics_page", "serving_metrics"]

MAX_CONNECTIONS = 16  # scrapers are few
STARTUP_SECONDS = 5.0


def metrics_page(metrics: Metrics, token: str | None, authorization: str | None) -> Response:
    """The scrape's answer: the metrics, or 401 when a token is set and not presented."""
    if token is not None and not _presented(token, authorization):
        return PlainTextResponse(
            "metrics need the bearer token (metrics_token)\n",
            401,
            headers={"WWW-Authenticate": 'Bearer realm="authgate-metrics"', "Cache-Control": "no-store"},
        )
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _presented(token: str, authorization: str | None) -> bool:
    given = authorization[7:].strip() if authorization and authorization[:7].lower() == "bearer " else ""
    return hmac.compare_digest(given.encode(), token.encode())


class _Page:
    """The listener's only app: GET (or HEAD) /metrics."""

    def __init__(self, metrics: Metrics, token: str | None) -> None:
        self.metrics = metrics
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        if scope["path"] != "/metrics":
            response: Response = PlainTextResponse("Not Found\n", 404)
        elif scope["method"] not in ("GET", "HEAD"):
            response = PlainTextResponse("Method Not Allowed\n", 405, headers={"Allow": "GET"})
        else:
            response = metrics_page(self.metrics, self.token, request.headers.get("authorization"))
        await response(scope, receive, send)


class MetricsListener:
    """`metrics_listen`: a uvicorn server of its own on the running loop; `start()`, `stop()`."""

    def __init__(
        self,
        listen: str,
        metrics: Metrics,
        token: str | None,
        *,
        header_read_timeout: float,
        sock: socket.socket | None,
    ) -> None:
        self.listen = listen
        self.sock = sock  # bound by AuthgateApp when it was made (`bound_socket`), or here
        self.app = _Page(metrics, token)
        self.header_read_timeout = header_read_timeout
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from authgate.server.http_protocol import bounded_protocol

        sock, self.sock = self.sock if self.sock is not None and self.sock.fileno() != -1 else None, None
        sock = sock or bound_socket(self.listen)
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            http=bounded_protocol(header_read_timeout=self.header_read_timeout, max_connections=MAX_CONNECTIONS),
        )
        self._server = server = _SecondServer(config)
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        async with asyncio.timeout(STARTUP_SECONDS):
            while not server.started:
                if self._task.done():
                    self._task.result()  # its failure, raised here
                    raise ConfigError("metrics_listen", f"cannot listen on {self.listen}", "choose a free port")
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        self._server = self._task = None


def bound_socket(listen: str) -> socket.socket:
    """`listen`'s address, bound (not yet listening); a ConfigError when it cannot be."""
    host, port = listen_address(listen)
    host = "127.0.0.1" if host == "localhost" else host
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            "metrics_listen",
            f"cannot listen on {listen}: {exc.strerror or exc}",
            "choose a free port (another process holds this one), or leave metrics_listen unset",
        ) from None
    sock.set_inheritable(True)
    return sock


class _SecondServer(uvicorn.Server):
    """Leaves the signals to the main server (server/shutdown.py), whose stop stops this one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_metrics(
    app: AuthgateApp, lifespan: contextlib.AbstractAsyncContextManager[None]
) -> AsyncIterator[None]:
    """Metrics on around the app's `lifespan`: the meter installed (authgate.metering), the
    listener started, the main listener's route answered, what is read at scrape time wired."""
    from authgate.server.metrics import Metrics

    settings = app.settings
    metrics = Metrics(routes=route_templates(app), transport=_transport(settings))
    token = settings.metrics_token.get_secret_value() if settings.metrics_token is not None else None
    listener = (
        MetricsListener(
            settings.metrics_listen,
            metrics,
            token,
            header_read_timeout=settings.header_read_timeout,
            sock=app.metrics_socket,
        )
        if settings.metrics_listen is not None
        else None
    )
    metering.install(metrics)
    try:
        async with lifespan:
            metrics.live.audit = app.policy.audit if app.policy is not None else None
            pool = getattr(app.mcp_app, "pool", None)  # the stdio bridge's children
            if pool is not None and isinstance(getattr(pool, "entries", None), dict):
                metrics.live.children = lambda: len(pool.entries)
            if app.handlers is not None and settings.metrics_on_main:

                async def page(request: Request) -> Response:
                    return metrics_page(metrics, token, request.headers.get("authorization"))

                app.handlers["metrics"] = page
            if listener is not None:
                await listener.start()
            try:
                yield
            finally:
                if listener is not None:
                    await listener.stop()
    finally:
        metering.install(None)


def route_templates(app: AuthgateApp) -> list[tuple[str, Callable[[str], bool] | None]]:
    """Every route's template (the MCP endpoint's too) and, for one with parameters, how to
    match a path to it."""
    prefix = app.mcp_path + "/"
    found: list[tuple[str, Callable[[str], bool] | None]] = [
        (app.mcp_path, None),
        (prefix + "{path}", lambda path: path.startswith(prefix)),
    ]
    for route in app.router.routes:
        template, regex = getattr(route, "path", None), getattr(route, "path_regex", None)
        if not isinstance(template, str):
            continue
        if getattr(route, "param_convertors", None) and regex is not None:
            found.append((template if "{" in template else template + "/{path}", _matcher(regex)))
        else:
            found.append((template, None))
    return found


def _matcher(regex: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda path: regex.match(path) is not None


def _transport(settings: Settings) -> str:
    if settings.upstream is not None:
        return "http"
    return "stdio" if settings.upstream_command else "none"
