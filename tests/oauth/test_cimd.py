"""CIMD resolution against a real HTTP(S) server on 127.0.0.1 (uvicorn in a thread).

Names such as `docs.test` do not exist in real DNS: a fetch that reaches the server through
one of them proves the resolver dialled the address we vetted, not one it looked up itself.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from authgate.errors import FetchError, InvalidClientMetadata
from authgate.oauth.cimd import (
    CimdPolicy,
    CimdResolver,
    address_problem,
    cache_seconds,
    is_cimd_client_id,
    validate_metadata,
)
from support import requirements as req

REDIRECT = "https://app.example.com/callback"


# ---------------------------------------------------------------- the document server


@dataclass
class DocServer:
    port: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    hosts: dict[str, str] = field(default_factory=dict)

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


def _doc(client_id: str, **extra: Any) -> dict[str, Any]:
    return {"client_id": client_id, "client_name": "Test", "redirect_uris": [REDIRECT], **extra}


def _app(server: DocServer) -> Starlette:
    def origin(request: Request) -> str:
        return f"{request.url.scheme}://{request.headers['host']}"

    async def doc(request: Request) -> Response:
        server.hits[request.url.path] += 1
        server.hosts[request.url.path] = request.headers["host"]
        if delay := float(request.query_params.get("delay", "0")):
            await asyncio.sleep(delay)
        headers = {"cache-control": request.query_params["cc"]} if "cc" in request.query_params else {}
        if "expires" in request.query_params:
            headers["expires"] = request.query_params["expires"]
        return JSONResponse(_doc(str(request.url)), headers=headers)

    async def custom(request: Request) -> Response:
        server.hits[request.url.path] += 1
        kind, cid = request.path_params["kind"], str(request.url)
        bodies: dict[str, Any] = {
            "mismatch": _doc("https://someone-else.example/client.json"),
            "secret": _doc(cid, token_endpoint_auth_method="client_secret_basic"),
            "array": [_doc(cid)],
        }
        if kind == "notjson":
            return Response("<html>hello</html>", media_type="text/html")
        if kind == "gzip":
            return Response(b"\x1f\x8b...", headers={"content-encoding": "gzip"})
        if kind == "missing":
            return JSONResponse({"error": "nope"}, status_code=404)
        return JSONResponse(bodies[kind])

    async def redirect(request: Request) -> Response:
        server.hits[request.url.path] += 1
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def hop(request: Request) -> Response:
        n = int(request.path_params["n"])
        return RedirectResponse(f"/hop/{n + 1}", status_code=307)

    async def target(request: Request) -> Response:
        name = request.path_params["name"]  # the document lives here but names the original URL
        return JSONResponse(_doc(f"{origin(request)}/moved/{name}"))

    async def big(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"client_id": "x", "pad": "'
            for _ in range(100):
                yield b"a" * 4096
            yield b'"}'

        if request.query_params.get("declared"):
            return Response(b"{}" + b" " * 200_000, media_type="application/json")
        return StreamingResponse(chunks(), media_type="application/json")

    async def slow(request: Request) -> Response:
        async def drip() -> AsyncIterator[bytes]:
            yield b'{"client_id": '
            await asyncio.sleep(5)
            yield b'"x"}'

        if request.query_params.get("body"):
            return StreamingResponse(drip(), media_type="application/json")
        await asyncio.sleep(5)
        return JSONResponse({})

    return Starlette(
        routes=[
            Route("/doc/{name:path}", doc),
            Route("/custom/{kind}", custom),
            Route("/redirect/{name}", redirect),
            Route("/moved/{name}", lambda r: RedirectResponse(f"/target/{r.path_params['name']}", 302)),
            Route("/target/{name}", target),
            Route("/hop/{n}", hop),
            Route("/big", big),
            Route("/slow", slow),
        ]
    )


# Not support.authgate_server.serve_asgi_in_thread on purpose: this server may speak TLS (ssl_*
# options, an https URL) and binds port 0, reading back the port the kernel gave it.
def _serve(server: DocServer, **ssl_args: Any) -> Iterator[DocServer]:
    config = uvicorn.Config(
        _app(server), host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1, **ssl_args
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    server.port = uv.servers[0].sockets[0].getsockname()[1]
    yield server
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def docs() -> Iterator[DocServer]:
    yield from _serve(DocServer())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DocServer, ssl.SSLContext]]:
    """An HTTPS server whose certificate is valid for `docs.test` only, and a context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "docs.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("docs.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    files = {"ssl_certfile": str(folder / "cert.pem"), "ssl_keyfile": str(folder / "key.pem")}
    for server in _serve(DocServer(), **files):
        yield server, context


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def fake_dns(table: dict[str, list[str]]) -> Any:
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


TEST_POLICY = CimdPolicy(allow_loopback_http=True, timeout=2.0)


@pytest.fixture
async def resolver() -> AsyncIterator[CimdResolver]:
    r = CimdResolver(TEST_POLICY, resolver=fake_dns({"docs.test": ["127.0.0.1"]}))
    yield r
    await r.aclose()


def unique(prefix: str = "/doc/") -> str:
    return f"{prefix}{uuid.uuid4().hex}"


# ---------------------------------------------------------------- client_id syntax


@pytest.mark.requirement(req.CIMD_CLIENT_ID_URL)
@pytest.mark.parametrize(
    ("client_id", "ok"),
    [
        ("https://app.example.com/oauth/client.json", True),
        ("https://app.example.com:8443/client?v=1", True),
        ("https://app.example.com", False),
        ("https://app.example.com/", False),
        ("http://app.example.com/client.json", False),
        ("http://127.0.0.1/client.json", False),
        ("https://app.example.com/client.json#frag", False),
        ("https://user:pw@app.example.com/client.json", False),
        ("https://app.example.com/a/../client.json", False),
        ("https://app.example.com/./client.json", False),
        ("https://app.example.com/a/%2E%2e/client.json", False),
        ("https://app.example.com/client .json", False),
        ("ftp://app.example.com/client.json", False),
        ("client-123", False),
    ],
)
def test_client_id_url_rules(client_id: str, ok: bool) -> None:
    assert is_cimd_client_id(client_id) is ok


async def test_http_loopback_client_id_only_in_testing_mode() -> None:
    assert is_cimd_client_id("http://127.0.0.1:9/c.json", CimdPolicy(allow_loopback_http=True))
    assert not is_cimd_client_id("http://127.0.0.1:9/c.json", CimdPolicy())
    for policy, expected in ((TEST_POLICY, True), (CimdPolicy(), False)):
        r = CimdResolver(policy)
        assert r.handles("http://127.0.0.1:9/c.json") is expected
        await r.aclose()


async def test_invalid_client_id_is_refused_without_network(resolver: CimdResolver) -> None:
    with pytest.raises(FetchError, match="has no path component"):
        await resolver.resolve("https://docs.test/")


# ---------------------------------------------------------------- fetching


async def test_fetches_and_validates_document(docs: DocServer, resolver: CimdResolver) -> None:
    url = docs.url(unique())
    metadata = await resolver.resolve(url)
    assert metadata["client_id"] == url
    assert metadata["redirect_uris"] == [REDIRECT]
    assert metadata["token_endpoint_auth_method"] == "none"  # defaulted


@pytest.mark.requirement(req.CIMD_SSRF_PINNED_ADDRESS)
async def test_dials_the_vetted_address_and_keeps_the_host_header(docs: DocServer) -> None:
    dns = fake_dns({"docs.test": ["127.0.0.1"]})
    r = CimdResolver(TEST_POLICY, resolver=dns)
    try:
        path = unique()
        url = docs.url(path, host="docs.test")
        assert (await r.resolve(url))["client_id"] == url
    finally:
        await r.aclose()
    assert docs.hosts[path] == f"docs.test:{docs.port}"
    assert dns.calls == [("docs.test", docs.port)]


@pytest.mark.requirement(req.CIMD_SSRF_TLS_FOR_HOST)
async def test_https_verifies_certificate_for_original_hostname(
    tls: tuple[DocServer, ssl.SSLContext],
) -> None:
    server, context = tls
    dns = fake_dns({"docs.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    r = CimdResolver(TEST_POLICY, resolver=dns, ssl_context=context)
    try:
        path = unique()
        url = server.url(path, host="docs.test", scheme="https")
        assert (await r.resolve(url))["client_id"] == url
        assert server.hosts[path] == f"docs.test:{server.port}"
        with pytest.raises(FetchError, match="(?i)certificate"):
            await r.resolve(server.url(unique(), host="other.test", scheme="https"))
    finally:
        await r.aclose()


@pytest.mark.requirement(req.CIMD_SSRF_PUBLIC_ADDRESSES)
@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "fd00::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "::",
        "2002:a00:1::",
        "64:ff9b::a9fe:a9fe",
        "2001:db8::1",
    ],
)
async def test_refuses_non_public_addresses(address: str) -> None:
    r = CimdResolver(TEST_POLICY, resolver=fake_dns({"evil.example": [address]}))
    try:
        with pytest.raises(FetchError, match=f"address {ipaddress.ip_address(address)} is "):
            await r.resolve("https://evil.example/client.json")
    finally:
        await r.aclose()


@pytest.mark.requirement(req.CIMD_SSRF_PUBLIC_ADDRESSES)
async def test_refuses_if_any_address_is_private() -> None:
    r = CimdResolver(CimdPolicy(), resolver=fake_dns({"evil.example": ["93.184.216.34", "10.0.0.5"]}))
    try:
        with pytest.raises(FetchError, match="address 10.0.0.5 is private"):
            await r.resolve("https://evil.example/client.json")
    finally:
        await r.aclose()


def test_public_addresses_pass() -> None:
    for address in ("93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"):
        assert address_problem(ipaddress.ip_address(address)) is None, address
    assert address_problem(ipaddress.ip_address("127.0.0.1"), allow_loopback=True) is None


@pytest.mark.requirement(req.CIMD_SSRF_PUBLIC_ADDRESSES)
@pytest.mark.parametrize("url", ["https://docs.test/c.json", "https://127.0.0.1/c.json", "https://[::1]/c"])
async def test_loopback_refused_in_production_mode(url: str) -> None:
    r = CimdResolver(CimdPolicy(), resolver=fake_dns({"docs.test": ["127.0.0.1"]}))
    try:
        with pytest.raises(FetchError, match="is loopback"):
            await r.resolve(url)
    finally:
        await r.aclose()


async def test_http_needs_a_loopback_address_even_in_testing_mode() -> None:
    r = CimdResolver(TEST_POLICY, resolver=fake_dns({"public.test": ["93.184.216.34"]}))
    try:
        with pytest.raises(FetchError, match="http is allowed for loopback only"):
            await r.resolve("http://public.test/client.json")
    finally:
        await r.aclose()


async def test_unresolvable_host_is_a_fetch_error(resolver: CimdResolver) -> None:
    with pytest.raises(FetchError, match="cannot resolve nowhere.test"):
        await resolver.resolve("https://nowhere.test/client.json")


# ---------------------------------------------------------------- redirects


async def test_follows_redirect_and_matches_original_url(docs: DocServer, resolver: CimdResolver) -> None:
    url = docs.url(f"/moved/{uuid.uuid4().hex}")  # 302 → /target/…, whose client_id names /moved/…
    assert (await resolver.resolve(url))["client_id"] == url


@pytest.mark.requirement(req.CIMD_CLIENT_ID_EQUALS_URL)
async def test_document_naming_the_redirect_target_is_refused(docs: DocServer, resolver: CimdResolver) -> None:
    final = docs.url(unique())
    with pytest.raises(InvalidClientMetadata, match="does not equal the document URL"):
        await resolver.resolve(docs.url(f"/redirect/a?to={final}"))


@pytest.mark.requirement(req.CIMD_SSRF_REDIRECT_HOPS)
@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("http://10.0.0.5/client.json", "address 10.0.0.5 is private"),
        ("https://metadata.test/latest", "address 169.254.169.254 is link-local"),
        ("https://user:pw@docs.test/x", "contains user information"),
        ("file:///etc/passwd", "is not https"),
    ],
)
async def test_redirect_to_forbidden_target_is_refused(docs: DocServer, location: str, message: str) -> None:
    dns = fake_dns({"metadata.test": ["169.254.169.254"]})
    r = CimdResolver(TEST_POLICY, resolver=dns)
    try:
        with pytest.raises(FetchError, match=message):
            await r.resolve(docs.url(f"/redirect/b?to={location}"))
    finally:
        await r.aclose()


async def test_redirects_refused_when_max_redirects_is_zero(docs: DocServer) -> None:
    r = CimdResolver(CimdPolicy(allow_loopback_http=True, max_redirects=0))
    try:
        with pytest.raises(FetchError, match="more than 0 redirects"):
            await r.resolve(docs.url(f"/moved/{uuid.uuid4().hex}"))
    finally:
        await r.aclose()


async def test_redirect_limit(docs: DocServer) -> None:
    r = CimdResolver(CimdPolicy(allow_loopback_http=True, max_redirects=3))
    try:
        with pytest.raises(FetchError, match="more than 3 redirects"):
            await r.resolve(docs.url("/hop/0"))
    finally:
        await r.aclose()


# ---------------------------------------------------------------- body rules


@pytest.mark.requirement(req.CIMD_RESPONSE_SIZE)
@pytest.mark.parametrize("query", ["", "?declared=1"])
async def test_oversized_document_is_refused(docs: DocServer, query: str) -> None:
    r = CimdResolver(CimdPolicy(allow_loopback_http=True, max_bytes=65536))
    try:
        with pytest.raises(FetchError, match="larger than 65536 bytes"):
            await r.resolve(docs.url(f"/big{query}"))
    finally:
        await r.aclose()


@pytest.mark.parametrize("query", ["", "?body=1"])
async def test_slow_server_times_out(docs: DocServer, query: str) -> None:
    r = CimdResolver(CimdPolicy(allow_loopback_http=True, timeout=0.5))
    started = time.monotonic()
    try:
        with pytest.raises(FetchError, match="no complete response within 0.5s"):
            await r.resolve(docs.url(f"/slow{query}"))
    finally:
        await r.aclose()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("missing", FetchError, "HTTP 404"),
        ("notjson", InvalidClientMetadata, "not valid JSON"),
        ("array", InvalidClientMetadata, "not a JSON object"),
        ("gzip", FetchError, "Content-Encoding"),
        ("mismatch", InvalidClientMetadata, "does not equal the document URL"),
        ("secret", InvalidClientMetadata, "client_secret_basic"),
    ],
)
async def test_bad_responses_are_refused(
    docs: DocServer, resolver: CimdResolver, kind: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await resolver.resolve(docs.url(f"/custom/{kind}"))


# ---------------------------------------------------------------- document validation

CID = "https://app.example.com/client.json"


@pytest.mark.requirement(req.CIMD_NO_SHARED_SECRET)
@pytest.mark.parametrize(
    "extra",
    [
        {"token_endpoint_auth_method": "client_secret_post"},
        {"token_endpoint_auth_method": "client_secret_basic"},
        {"token_endpoint_auth_method": "client_secret_jwt"},
        {"token_endpoint_auth_method": "tls_client_auth"},
        {"client_secret": "s3cret"},
        {"client_secret_expires_at": 0},
    ],
)
def test_shared_secrets_are_refused(extra: dict[str, Any]) -> None:
    with pytest.raises(InvalidClientMetadata):
        validate_metadata(_doc(CID, **extra), CID)


def test_private_key_jwt_needs_keys() -> None:
    with pytest.raises(InvalidClientMetadata, match="jwks"):
        validate_metadata(_doc(CID, token_endpoint_auth_method="private_key_jwt"), CID)
    doc = _doc(CID, token_endpoint_auth_method="private_key_jwt", jwks_uri="https://app.example.com/jwks")
    assert validate_metadata(doc, CID)["token_endpoint_auth_method"] == "private_key_jwt"


@pytest.mark.requirement(req.CIMD_CLIENT_ID_EQUALS_URL)
@pytest.mark.parametrize("other", [CID + "/", "https://APP.example.com/client.json", None])
def test_client_id_must_match_exactly(other: str | None) -> None:
    with pytest.raises(InvalidClientMetadata, match="does not equal"):
        validate_metadata(_doc(CID) | {"client_id": other}, CID)


@pytest.mark.parametrize(
    "uris",
    [None, [], "https://a.example/cb", [1], ["/relative"], ["https://a.example/cb#x"], ["javascript:x()"]],
)
def test_redirect_uris_are_checked(uris: Any) -> None:
    with pytest.raises(InvalidClientMetadata, match="redirect"):
        validate_metadata(_doc(CID) | {"redirect_uris": uris}, CID)


@pytest.mark.parametrize(
    "uri", ["https://claude.ai@evil.example/cb", "https://a.example/cb\r\n", "https://a.example/c b"]
)
def test_deceptive_redirect_uris_are_refused_as_at_registration(uri: str) -> None:
    with pytest.raises(InvalidClientMetadata, match="user information|control characters"):
        validate_metadata(_doc(CID) | {"redirect_uris": [uri]}, CID)


def test_loopback_redirect_uri_is_accepted() -> None:
    doc = _doc(CID) | {"redirect_uris": ["http://localhost/callback", "http://127.0.0.1:33418/cb"]}
    assert validate_metadata(doc, CID)["redirect_uris"] == doc["redirect_uris"]


# ---------------------------------------------------------------- caching


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, 300),
        ({"cache-control": "public, max-age=3600"}, 3600),
        ({"cache-control": "max-age=5"}, 60),
        ({"cache-control": "max-age=999999999"}, 86400),
        ({"cache-control": "max-age=3600", "age": "1000"}, 2600),
        ({"cache-control": "no-store"}, 60),
        ({"cache-control": "max-age=oops"}, 60),
        ({"expires": "Tue, 14 Nov 2023 23:13:20 GMT", "date": "Tue, 14 Nov 2023 22:13:20 GMT"}, 3600),
        ({"expires": "0"}, 60),
    ],
)
def test_cache_lifetime_from_headers(headers: dict[str, str], seconds: float) -> None:
    assert cache_seconds(httpx.Headers(headers), 1_700_000_000.0, CimdPolicy()) == seconds


async def _counted(docs: DocServer, r: CimdResolver, url: str, path: str) -> int:
    await r.resolve(url)
    return docs.hits[path]


@pytest.mark.requirement(req.CIMD_CACHE_HEADERS)
async def test_cache_honours_max_age_and_clamps(docs: DocServer) -> None:
    clock = Clock()
    r = CimdResolver(TEST_POLICY, clock=clock)
    try:
        long_path, short_path = unique(), unique()
        long_url, short_url = docs.url(long_path + "?cc=max-age=600"), docs.url(short_path + "?cc=max-age=1")
        assert await _counted(docs, r, long_url, long_path) == 1
        assert await _counted(docs, r, short_url, short_path) == 1
        clock.now += 59  # max-age=1 is clamped up to the 60 s minimum
        assert await _counted(docs, r, short_url, short_path) == 1
        clock.now += 2
        assert await _counted(docs, r, short_url, short_path) == 2
        assert await _counted(docs, r, long_url, long_path) == 1
        clock.now += 600
        assert await _counted(docs, r, long_url, long_path) == 2
    finally:
        await r.aclose()


async def test_failures_are_cached_briefly(docs: DocServer) -> None:
    clock = Clock()
    r = CimdResolver(TEST_POLICY, clock=clock)  # negative_cache_seconds = 30
    path = "/custom/missing"
    try:
        before = docs.hits[path]
        for advance, fetched in ((0, 1), (29, 1), (2, 2)):
            clock.now += advance
            with pytest.raises(FetchError, match="HTTP 404"):
                await r.resolve(docs.url(path))
            assert docs.hits[path] - before == fetched
    finally:
        await r.aclose()


async def test_concurrent_fetches_are_coalesced(docs: DocServer, resolver: CimdResolver) -> None:
    path = unique()
    url = docs.url(path + "?delay=0.3")
    results = await asyncio.gather(*(resolver.resolve(url) for _ in range(8)))
    assert all(m["client_id"] == url for m in results)
    assert docs.hits[path] == 1


async def test_cached_result_is_a_copy(docs: DocServer, resolver: CimdResolver) -> None:
    url = docs.url(unique())
    (await resolver.resolve(url))["redirect_uris"].append("https://attacker.example/cb")
    assert (await resolver.resolve(url))["redirect_uris"] == [REDIRECT]


async def test_cache_size_is_bounded(docs: DocServer) -> None:
    r = CimdResolver(CimdPolicy(allow_loopback_http=True, max_cache_entries=3))
    try:
        for _ in range(5):
            await r.resolve(docs.url(unique()))
        assert len(r._cache) == 3
    finally:
        await r.aclose()
