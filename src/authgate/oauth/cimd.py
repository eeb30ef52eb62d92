"""Client ID Metadata Documents: resolve an HTTPS `client_id` to its validated metadata.

draft-ietf-oauth-client-id-metadata-document (MCP 2025-11-25 authorization). The URL is chosen
by whoever calls /authorize, so the fetch is an SSRF risk: we resolve the host ourselves, refuse
any non-public address, then dial *only* that address. The hostname stays in the URL, so SNI,
certificate checks and `Host` are the client's; `_PinnedBackend` swaps in the vetted IP, so DNS
cannot rebind between check and connect. Redirect hops get the same checks; size and total time
are bounded; results and failures are cached; concurrent fetches of one URL are coalesced.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx

from authgate.errors import (
    FetchError,
    InvalidClientMetadata,
    InvalidRedirectUri,
    Unreachable,
)
from authgate.httpx_errors import translated
from authgate.oauth.redirect_uris import validate_for_registration

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DnsResolver = Callable[[str, int], Awaitable[list[str]]]
"""`(host, port) -> [ip, ...]`; injectable so tests can point names anywhere."""

_SECRET_AUTH_METHODS = frozenset({"client_secret_post", "client_secret_basic", "client_secret_jwt"})
_ALLOWED_AUTH_METHODS = frozenset({"none", "private_key_jwt"})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True, slots=True)
class CimdPolicy:
    allow_loopback_http: bool = False  # TESTING ONLY: permit http://127.0.0.1 / localhost docs
    timeout: float = 5.0  # total time budget for the fetch incl. DNS and redirects
    max_bytes: int = 65536
    min_cache_seconds: int = 60
    max_cache_seconds: int = 86400
    default_cache_seconds: int = 300
    max_redirects: int = 3  # 0 = refuse redirects (draft -01 says MUST NOT follow them)
    negative_cache_seconds: int = 30  # a failing client_id is not refetched sooner than this
    max_cache_entries: int = 1024  # bounds memory when callers invent many client_ids


def _client_id_problem(client_id: str, policy: CimdPolicy) -> str | None:
    """Why `client_id` is not a CIMD URL (CIMD: client identifier), or None if it is."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in client_id):
        return "contains whitespace or control characters"
    if "#" in client_id:
        return "has a fragment"
    if problem := _fetch_url_problem(client_id, policy):
        return problem
    path = urlsplit(client_id).path
    if path in ("", "/"):
        return "has no path component"
    segments = path.lower().replace("%2e", ".").split("/")
    return "has dot segments in its path" if "." in segments or ".." in segments else None


def _fetch_url_problem(url: str, policy: CimdPolicy) -> str | None:
    """Rules for every URL we fetch: the client_id and each redirect target alike."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return "is not a valid URL"
    allowed = ("https", "http") if policy.allow_loopback_http else ("https",)
    if parts.scheme.lower() not in allowed:
        return "is not https"
    if not parts.hostname:
        return "has no host"
    return "contains user information" if "@" in parts.netloc else None


def is_cimd_client_id(client_id: str, policy: CimdPolicy | None = None) -> bool:
    """Cheap syntactic test: should this client_id be resolved as a metadata document?"""
    return _client_id_problem(client_id, policy or CimdPolicy()) is None


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


async def _system_dns(host: str, port: int) -> list[str]:
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


def cache_seconds(headers: httpx.Headers, now: float, policy: CimdPolicy) -> float:
    """Freshness from Cache-Control / Expires (RFC 9111 §4.2.1), clamped to the policy bounds.
    `no-store`/`no-cache` still get the minimum, so a client cannot make us refetch per request."""
    directives: dict[str, str] = {}
    for item in headers.get("cache-control", "").split(","):
        name, _, value = item.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    ttl: float = policy.default_cache_seconds
    if "no-store" in directives or "no-cache" in directives:
        ttl = 0
    elif "max-age" in directives:
        ttl = _int_or_zero(directives["max-age"]) - _int_or_zero(headers.get("age", "0"))
    elif "expires" in headers:
        expires = _http_date(headers["expires"])  # an invalid Expires means "already expired"
        ttl = 0 if expires is None else expires - (_http_date(headers.get("date", "")) or now)
    return float(min(max(ttl, policy.min_cache_seconds), policy.max_cache_seconds))


def _int_or_zero(text: str) -> int:
    return int(text) if text.strip().isdigit() else 0  # a malformed max-age means stale


def _http_date(text: str) -> float | None:
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float
    document: dict[str, Any] | None = None
    error: FetchError | InvalidClientMetadata | None = None

    def result(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error.with_traceback(None)
        assert self.document is not None
        return copy.deepcopy(self.document)  # callers may mutate; the cache must not change


def validate_metadata(document: Any, client_id: str) -> dict[str, Any]:
    """Check a fetched document (CIMD: client metadata); return a copy with defaults filled in."""
    where = f"CIMD document {client_id}"
    if not isinstance(document, dict):
        raise InvalidClientMetadata(f"{where}: is not a JSON object")
    if document.get("client_id") != client_id:  # simple string comparison, RFC 3986 §6.2.1
        raise InvalidClientMetadata(f"{where}: its client_id does not equal the document URL")
    # CIMD: no shared secret can exist, so no secret and no secret-based auth method
    if "client_secret" in document or "client_secret_expires_at" in document:
        raise InvalidClientMetadata(f"{where}: must not contain a client secret")
    method = document.get("token_endpoint_auth_method", "none")
    if method in _SECRET_AUTH_METHODS:
        raise InvalidClientMetadata(f"{where}: shared-secret auth method '{method}' is not allowed")
    if method not in _ALLOWED_AUTH_METHODS:
        raise InvalidClientMetadata(f"{where}: token_endpoint_auth_method must be none or private_key_jwt")
    if method == "private_key_jwt" and not (document.get("jwks_uri") or document.get("jwks")):
        raise InvalidClientMetadata(f"{where}: private_key_jwt needs jwks_uri or jwks")
    if "jwks_uri" in document and "jwks" in document:  # RFC 7591 §2
        raise InvalidClientMetadata(f"{where}: jwks_uri and jwks must not both be present")
    _check_redirect_uris(document, where)
    for key in ("grant_types", "response_types"):
        if key in document and not _is_str_list(document[key]):
            raise InvalidClientMetadata(f"{where}: {key} must be a list of strings")
    return copy.deepcopy(document) | {"token_endpoint_auth_method": method}


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_redirect_uris(document: dict[str, Any], where: str) -> None:
    """Non-empty; each URI obeys the same rules as at DCR registration (RFC 7591 §2)."""
    uris = document.get("redirect_uris")
    if not _is_str_list(uris) or not uris:
        raise InvalidClientMetadata(f"{where}: redirect_uris must be a non-empty list of strings")
    app_type = document.get("application_type", "web")
    for uri in uris:
        try:
            validate_for_registration(uri, app_type if isinstance(app_type, str) else "web")
        except InvalidRedirectUri as exc:
            raise InvalidClientMetadata(f"{where}: {exc.description}") from None


class CimdResolver:
    """Fetches, validates and caches CIMD documents. One per process; `aclose()` on shutdown."""

    def __init__(
        self, policy: CimdPolicy, *, clock: Callable[[], float] = time.time,
        resolver: DnsResolver = _system_dns,
        ssl_context: ssl.SSLContext | None = None,  # tests trust their own CA; default: certifi
    ) -> None:  # fmt: skip
        self._policy = policy
        self._clock = clock
        self._dns = resolver
        transport = _PinnedTransport(ssl_context or httpx.create_ssl_context())
        self._client = httpx.AsyncClient(transport=transport, trust_env=False, timeout=policy.timeout)
        self._cache: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Task[_Entry]] = {}

    def handles(self, client_id: str) -> bool:
        """Whether `client_id` is a CIMD URL under this resolver's policy (use this, not the bare
        `is_cimd_client_id`, so testing-mode http://127.0.0.1 client_ids are recognised too)."""
        return is_cimd_client_id(client_id, self._policy)

    async def resolve(self, client_id: str) -> dict[str, Any]:
        """The validated metadata for `client_id`; raises FetchError or InvalidClientMetadata."""
        if problem := _client_id_problem(client_id, self._policy):
            raise FetchError(f"CIMD client_id {client_id[:200]!r} {problem}")
        entry = self._cache.get(client_id)
        if entry is not None and entry.expires > self._clock():
            return entry.result()
        task = self._inflight.get(client_id)
        if task is None:  # coalesce: every concurrent caller awaits this one fetch
            task = asyncio.create_task(self._load(client_id))
            self._inflight[client_id] = task
            task.add_done_callback(lambda t: self._forget(client_id, t))
        return (await asyncio.shield(task)).result()

    def _forget(self, client_id: str, task: asyncio.Task[_Entry]) -> None:
        if self._inflight.get(client_id) is task:
            del self._inflight[client_id]
        if not task.cancelled():
            task.exception()  # mark retrieved even if every waiter went away

    async def _load(self, client_id: str) -> _Entry:
        try:
            document, headers = await self._fetch(client_id)
            metadata = validate_metadata(document, client_id)
            now = self._clock()
            entry = _Entry(now + cache_seconds(headers, now, self._policy), metadata)
        except (FetchError, InvalidClientMetadata) as exc:
            entry = _Entry(self._clock() + self._policy.negative_cache_seconds, error=exc)
        self._cache.pop(client_id, None)
        while len(self._cache) >= self._policy.max_cache_entries:
            del self._cache[next(iter(self._cache))]  # bounded: evict the oldest insertion
        self._cache[client_id] = entry
        return entry

    async def _fetch(self, client_id: str) -> tuple[Any, httpx.Headers]:
        where = f"CIMD document {client_id}"
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
            if problem := _fetch_url_problem(url, self._policy):
                raise FetchError(f"{where}: redirect target {url[:200]} {problem}")
            response, body = await self._get(url, where)
            location = response.headers.get("location")
            if response.status_code in _REDIRECT_STATUSES and location:
                url = urlunsplit(urlsplit(urljoin(url, location))._replace(fragment=""))
                continue
            if response.status_code != 200:  # CIMD: only a 200 OK response is a document
                raise FetchError(f"{where}: HTTP {response.status_code}")
            return _parse_json(body, where), response.headers
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
        for task in list(self._inflight.values()):
            task.cancel()
        await self._client.aclose()


def _parse_json(body: bytes, where: str) -> Any:
    # Content-Type is tolerated loosely (not enforced); the body must still be JSON.
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidClientMetadata(f"{where}: is not valid JSON ({type(exc).__name__})") from None
