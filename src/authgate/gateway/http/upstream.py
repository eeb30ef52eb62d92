"""The connection pool to the upstream MCP server (aiohttp's client), its timeouts, and what
each transport failure means to the client.

* connect — opening a TCP (+TLS) connection, DNS included: refused → 502, too slow → 504;
* first byte — from the request being sent to the response headers: too slow → 504. A tool
  answering in JSON spends its whole run here; one answering with SSE only until its
  stream opens;
* idle — once the headers are in, the longest silence between two chunks of the body; past
  it, or when the connection is lost mid-answer, the client gets 504 / 502 (`explain_read`),
  or the last event of its SSE stream;
* call and stream — the longest one request's whole answer, or a standalone GET stream, may
  take: the proxy bounds the whole exchange with them (`call_timeout`, `stream_timeout`).

Why aiohttp and not httpx: measured as a reverse proxy on this machine kind, an httpx-based
one reached 0.45× of direct throughput (its pool polls every idle connection per request),
an aiohttp-based one 0.92–0.95×. Connections are kept alive for less time than common
servers keep them (uvicorn: 5 s), because a POST cannot be retried safely on a connection
the server closed just as it was reused (RFC 9110 §9.2.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from authgate import metering
from authgate.gateway.errors import (
    UpstreamError,
    UpstreamIdleTimeout,
    UpstreamStreamCut,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from authgate.masking import masked_url, masked_urls

if TYPE_CHECKING:
    from authgate.tracing import Tracing

__all__ = ["Upstream"]

log = logging.getLogger("authgate.gateway")

_UNTRACED = contextlib.nullcontext()  # stateless: one for every exchange while tracing is off


def _lost_before_answer(exc: BaseException) -> bool:
    """The connection broke before the upstream's answer began (reset, or closed without a
    word) — not a refused connection or a timeout, which a second try would only repeat."""
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return False
    return isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)


class Upstream:
    """A pooled HTTP client bound to one upstream URL. `open()`/`close()` bracket its life
    (it opens itself on first use if nobody did)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float,
        first_byte_timeout: float,
        idle_timeout: float,
        call_timeout: float = 600.0,
        stream_timeout: float = 3600.0,
        max_connections: int = 0,
        keepalive_timeout: float = 4.0,
    ) -> None:
        self.url = URL(url)
        self.shown = masked_url(url)  # for errors and logs: query values masked (authgate/masking.py)
        self.connect_timeout = connect_timeout
        self.first_byte_timeout = first_byte_timeout
        self.idle_timeout = idle_timeout
        self.call_timeout = call_timeout
        self.stream_timeout = stream_timeout
        self.max_connections = max_connections  # 0: no cap; every open stream holds a connection
        self.keepalive_timeout = keepalive_timeout
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=first_byte_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self.tracing: Tracing | None = None  # set when otel_enabled (server/tracing.py)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, limit_per_host=0, keepalive_timeout=self.keepalive_timeout
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
                read_bufsize=2**16,
            )
        return self._session

    async def open(self) -> None:
        _ = self.session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url_for(self, suffix: str, query: bytes) -> URL:
        """The upstream URL for a request to `{mcp path}{suffix}?{query}`."""
        if not suffix and not query:
            return self.url
        path = self.url.raw_path.rstrip("/") + suffix if suffix else self.url.raw_path
        return self.url.with_path(path, encoded=True).with_query(query.decode("latin-1") or None)

    def traced(
        self, method: str, headers: list[tuple[str, str]], reply: Any
    ) -> contextlib.AbstractAsyncContextManager[object]:
        """Around one whole exchange: with tracing on, its span (authgate/tracing.py), whose context
        goes into `headers` as `traceparent`; else nothing."""
        if self.tracing is None:
            return _UNTRACED
        return self.tracing.upstream_http(method, self.shown, headers, reply)

    async def send(
        self,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: aiohttp.ClientTimeout | None = None,
        *,
        replayable: bool = False,
    ) -> aiohttp.ClientResponse:
        """Send a request and wait for the response headers; the caller must close it.
        Raises an UpstreamError the client can be shown.

        A kept-alive connection the upstream closes just as it is reused (its keep-alive ran
        out, or it reset connections under load) fails the request before any answer. aiohttp
        sends GET and DELETE once more on a fresh connection itself; a POST is sent again only
        when `replayable` (every message a request that changes nothing: jsonrpc.REPLAYABLE_METHODS),
        and only once. A tools/call is never sent twice: its client gets the 502."""
        begun = time.monotonic()
        attempts = 2 if replayable and method == "POST" else 1
        while True:
            attempts -= 1
            try:
                response = await self.session.request(
                    method, url, headers=headers, data=body, allow_redirects=False, timeout=timeout or self._timeout
                )
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every transport failure becomes a 502/504
                if attempts > 0 and _lost_before_answer(exc):
                    log.info(
                        "upstream closed a kept-alive connection (%s); sending %s again", type(exc).__name__, method
                    )
                    continue
                raise self._explain(exc) from exc
        if (meter := metering.meter) is not None:  # until the response head (server/metrics.py)
            meter.upstream(time.monotonic() - begun)
        # From here on the limit is silence between chunks, not the wait for the first byte
        # (aiohttp drops the timer at the end of the body; a body already whole needs none).
        connection = response.connection
        if connection is not None and connection.protocol is not None and not response.content.is_eof():
            connection.protocol.read_timeout = self.idle_timeout
            connection.protocol.start_timeout()
        return response

    @property
    def where(self) -> str:
        """How errors and logs name the upstream."""
        return f"the upstream MCP server at {self.shown}"

    def explain_read(self, exc: BaseException) -> UpstreamError:
        """What a failure while reading an answer's body means: silence past the idle timeout, or
        a connection lost (the upstream died, or something between cut it)."""
        if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
            return UpstreamIdleTimeout(
                f"authgate: {self.where} was silent for longer than {self.idle_timeout:g} s in the middle "
                "of its answer (upstream_idle_timeout)"
            )
        cut = f"authgate: {self.where} closed the connection in the middle of its answer"
        if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
            return UpstreamStreamCut(cut)  # aiohttp's text adds nothing but transfer-encoding details
        return UpstreamStreamCut(f"{cut} ({type(exc).__name__}: {masked_urls(str(exc))})")

    def _explain(self, exc: BaseException) -> UpstreamError:
        where = self.where
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return UpstreamTimeout(
                f"authgate: {where} did not accept a connection within "
                f"{self.connect_timeout:g} s (upstream_connect_timeout)"
            )
        if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
            return UpstreamTimeout(
                f"authgate: {where} did not start answering within "
                f"{self.first_byte_timeout:g} s (upstream_first_byte_timeout)"
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = exc.os_error.strerror or str(exc.os_error)
            return UpstreamUnavailable(f"authgate: {where} is unreachable ({reason})")
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return UpstreamUnavailable(f"authgate: {where} closed the connection without answering")
        log.warning("upstream request failed: %s", masked_urls(repr(exc)))
        return UpstreamUnavailable(f"authgate: {where} failed: {type(exc).__name__}: {masked_urls(str(exc))}")

    async def check(self, headers: list[tuple[str, str]], *, unauthorized_is_up: bool = False) -> tuple[bool, str]:
        """Readiness: can the upstream be reached, and does it accept authgate's credential?
        Any HTTP answer below 500 but 401/403 means it is up (a GET without a session or
        with `Accept: application/json` is refused by MCP servers, harmlessly); a 401 too when
        each person brings their own token (`unauthorized_is_up`: gateway/http/upstream_oauth.py)."""
        try:
            quick = aiohttp.ClientTimeout(total=self.connect_timeout + 5.0, sock_connect=self.connect_timeout)
            response = await self.send("GET", self.url, [*headers, ("Accept", "application/json")], None, quick)
        except UpstreamError as exc:
            return False, exc.message
        try:
            status = response.status
            await response.content.read(65536)
        except Exception:  # noqa: BLE001 - the status is what counts
            pass
        finally:
            response.close()
        if status == 401 and unauthorized_is_up:
            return True, "ok (OAuth-protected: each person connects their own account)"
        if status in (401, 403):
            return (
                False,
                f"the upstream refuses authgate's credentials (HTTP {status}); "
                "check upstream_bearer_token / upstream_headers",
            )
        if status >= 500:
            return False, f"the upstream answers HTTP {status}"
        return True, "ok"
