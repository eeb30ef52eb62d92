"""Fetching a CIMD document without becoming an SSRF tool.

draft-ietf-oauth-client-id-metadata-document (MCP 2025-11-25 authorization). The URL is chosen
by whoever calls /authorize, so the fetch is an SSRF risk: we resolve the host ourselves, refuse
any non-public address, then dial *only* that address. The hostname stays in the URL, so SNI,
certificate checks and `Host` are the client's; `_PinnedBackend` swaps in the vetted IP, so DNS
cannot rebind between check and connect. Redirect hops get the same checks; size and total time
are bounded.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx

from authgate.errors import FetchError, Unreachable
from authgate.httpx_errors import translated
from authgate.oauth.cimd.policy import CimdPolicy
from authgate.oauth.cimd.validating import fetch_url_problem, parse_json

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DnsResolver = Callable[[str, int], Awaitable[list[str]]]
"""`(host, port) -> [ip, ...]`; injectable so tests can point names anywhere."""

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, bool]:
    """The IPv4 address `ip` carries, and whether it is the real destination (IPv4-mapped,
    NAT64 well-known prefix) rather than a tunnel endpoint (6to4, Teredo, ::a.b.c.d)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, True
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), True
    if ip.sixtofour is not None:
        return ip.sixtofour, False
    if ip.teredo is not None:
        return ip.teredo[1], False
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip)), False
    return None, False


def address_problem(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why we must not connect to `ip` (CIMD security: SSRF), or None if it is public.
    `allow_loopback` (testing) admits native loopback only, never an embedding of it."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner, is_destination = _embedded_ipv4(ip)
        problem = address_problem(inner) if inner is not None else None
        if problem or is_destination:
            return f"{problem} (embeds {inner})" if problem else None
        if ip.is_site_local:  # deprecated fec0::/10 still reads as global to `ipaddress`
            return "site-local"
    if allow_loopback and ip.is_loopback:
        return None
    checks = (
        (ip.is_unspecified, "unspecified"), (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"), (ip.is_multicast, "multicast"),
        (ip.is_private, "private"), (ip.is_reserved, "reserved"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "shared address space (CGNAT)"),
        (not ip.is_global, "not globally routable"),
    )  # fmt: skip
    return next((label for bad, label in checks if bad), None)


async def system_dns(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# (hostname, vetted ip) for the request the current task is making
_PIN: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("cimd_pin", default=None)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Dials the vetted IP for the pinned hostname; refuses any connection that is not pinned."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None, socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        pin = _PIN.get()
        if pin is None or pin[0] != host:
            raise httpcore.ConnectError(f"refusing to dial unvetted host {host!r}")
        return await self._inner.connect_tcp(pin[1], port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool that uses `_PinnedBackend` and keeps no idle connection,
    so every fetch dials the address vetted for it. httpx takes no `network_backend` argument,
    so we replace its `_pool`; the DNS-pinning tests fail if that seam ever moves."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, max_keepalive_connections=0, network_backend=_PinnedBackend()
        )


class PinnedFetcher:
    """GETs a CIMD document over `_PinnedTransport`, every hop vetted. `aclose()` on shutdown."""

    def __init__(self, policy: CimdPolicy, dns: DnsResolver, ssl_context: ssl.SSLContext | None) -> None:
        self._policy = policy
        self._dns = dns
        transport = _PinnedTransport(ssl_context or httpx.create_ssl_context())
        self._client = httpx.AsyncClient(transport=transport, trust_env=False, timeout=policy.timeout)

    async def fetch(self, client_id: str, *, what: str = "CIMD document") -> tuple[Any, httpx.Headers]:
        """GET `client_id` (or another URL `what` names: a client's jwks_uri, oauth/client_keys.py)."""
        where = f"{what} {client_id}"
        timed_out = FetchError(f"{where}: no complete response within {self._policy.timeout:g}s")
        try:
            async with asyncio.timeout(self._policy.timeout):
                with translated(where):
                    return await self._follow(client_id, where)
        except TimeoutError:
            raise timed_out from None
        except Unreachable as exc:
            raise (timed_out if exc.timed_out else FetchError(f"{where}: {exc.kind}: {exc.detail[:200]}")) from None

    async def _follow(self, client_id: str, where: str) -> tuple[Any, httpx.Headers]:
        """GET the document, following at most `max_redirects` hops, each one re-vetted."""
        url = client_id
        for _ in range(self._policy.max_redirects + 1):
            if problem := fetch_url_problem(url, self._policy):
                raise FetchError(f"{where}: redirect target {url[:200]} {problem}")
            response, body = await self._get(url, where)
            location = response.headers.get("location")
            if response.status_code in _REDIRECT_STATUSES and location:
                url = urlunsplit(urlsplit(urljoin(url, location))._replace(fragment=""))
                continue
            if response.status_code != 200:  # CIMD: only a 200 OK response is a document
                raise FetchError(f"{where}: HTTP {response.status_code}")
            return parse_json(body, where), response.headers
        raise FetchError(f"{where}: more than {self._policy.max_redirects} redirects")

    async def _get(self, url: str, where: str) -> tuple[httpx.Response, bytes]:
        target = httpx.URL(url)
        host = target.raw_host.decode("ascii")
        port = target.port or (443 if target.scheme == "https" else 80)
        token = _PIN.set((host, await self._vet_host(host, port, target.scheme, where)))
        try:
            headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
            request = self._client.build_request("GET", target, headers=headers)
            response = await self._client.send(request, stream=True)
            try:
                body = await self._read_body(response, where) if response.status_code == 200 else b""
            finally:
                await response.aclose()
        finally:
            _PIN.reset(token)
        return response, body

    async def exchange(
        self, method: str, url: str, *, what: str, form: dict[str, str] | None = None,
        json_body: Any = None, headers: dict[str, str] | None = None,
    ) -> tuple[int, httpx.Headers, bytes]:  # fmt: skip
        """One request to `url`, vetted and pinned like `fetch`, never following a redirect (the
        caller reads a 302's Location itself; a token POST is never redirected): its status,
        headers and body (any status, at most `max_bytes`). For authgate's outbound OAuth client."""
        where = f"{what} {url[:200]}"
        if problem := fetch_url_problem(url, self._policy):
            raise FetchError(f"{where}: {problem}")
        try:
            async with asyncio.timeout(self._policy.timeout):
                with translated(where):
                    return await self._exchange(method, url, where, form, json_body, headers or {})
        except TimeoutError:
            raise FetchError(f"{where}: no complete response within {self._policy.timeout:g}s") from None
        except Unreachable as exc:
            raise FetchError(f"{where}: {exc.kind}: {exc.detail[:200]}") from None

    async def _exchange(
        self, method: str, url: str, where: str, form: dict[str, str] | None, json_body: Any, headers: dict[str, str]
    ) -> tuple[int, httpx.Headers, bytes]:
        target = httpx.URL(url)
        host = target.raw_host.decode("ascii")
        port = target.port or (443 if target.scheme == "https" else 80)
        token = _PIN.set((host, await self._vet_host(host, port, target.scheme, where)))
        try:
            sent = {"Accept": "application/json", "Accept-Encoding": "identity", **headers}
            request = self._client.build_request(method, target, headers=sent, data=form, json=json_body)
            response = await self._client.send(request, stream=True)
            try:
                body = await self._read_body(response, where)
            finally:
                await response.aclose()
        finally:
            _PIN.reset(token)
        return response.status_code, response.headers, body

    async def _vet_host(self, host: str, port: int, scheme: str, where: str) -> str:
        """Resolve `host`; refuse if ANY address is not public; return the one to dial."""
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                found = await self._dns(host, port)
            except OSError as exc:
                raise FetchError(f"{where}: cannot resolve {host}: {exc}") from None
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses:
            raise FetchError(f"{where}: {host} has no addresses")
        for ip in addresses:
            if problem := address_problem(ip, allow_loopback=self._policy.allow_loopback_http):
                raise FetchError(f"{where}: address {ip} is {problem}")
            if scheme == "http" and not ip.is_loopback:
                raise FetchError(f"{where}: http is allowed for loopback only, {host} is {ip}")
        return str(addresses[0])

    async def _read_body(self, response: httpx.Response, where: str) -> bytes:
        """At most `max_bytes`, counted as they arrive (CIMD security: maximum response size)."""
        limit = self._policy.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FetchError(f"{where}: document is larger than {limit} bytes")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):  # we asked for identity: no decompression bombs
            raise FetchError(f"{where}: unexpected Content-Encoding '{encoding[:40]}'")
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > limit:
                raise FetchError(f"{where}: document is larger than {limit} bytes")
        return bytes(body)

    async def aclose(self) -> None:
        await self._client.aclose()
