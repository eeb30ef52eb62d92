"""TESTING ONLY: a local HTTPS host that stands in for chatgpt.com / claude.ai, serving the
pinned client ID metadata documents with `client_id` rewritten to the stand-in's URL, so the
CIMD path can be tested offline.

    ca = make_test_ca(tmp_dir)                      # a throw-away CA and a 127.0.0.1 certificate
    with serve_standin(ca) as base:                 # https://127.0.0.1:PORT
        # run the server under test with cimd_ca_file=ca.ca_file (and loopback CIMD allowed), then
        # authgate doctor URL --cimd-host-map chatgpt.com=BASE --cimd-host-map claude.ai=BASE

Every host maps to the same stand-in: the documents' paths differ.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from authgate.doctor.profiles import PROFILES, mapped_cimd_url, pinned_document

_START_TIMEOUT = 15.0
STANDIN_JWKS_PATH = "/.well-known/authgate-doctor-standin-jwks.json"
STANDIN_KEY_ALG = "ES256"


def standin_client_key() -> Any:
    """TESTING ONLY: the stand-in clients' `private_key_jwt` key (a joserfc ECKey). Derived from
    a published seed, so anyone can compute it: it signs only for documents the stand-in serves
    (with its JWK Set), never for the real chatgpt.com, whose jwks_uri does not hold it."""
    from joserfc.jwk import ECKey

    seed = int.from_bytes(hashlib.sha256(b"authgate doctor stand-in client key").digest(), "big")
    key = ec.derive_private_key(seed % (2**255), ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ECKey.import_key(pem, parameters={"kid": "authgate-doctor-standin"})


@dataclass(frozen=True, slots=True)
class StandinCA:
    ca_file: Path  # give this to the server under test (cimd_ca_file)
    cert_file: Path  # the stand-in's certificate for 127.0.0.1 and localhost
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_test_ca(directory: Path) -> StandinCA:
    """Create a CA and a server certificate for 127.0.0.1/localhost, valid for one day."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("authgate doctor test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = StandinCA(directory / "doctor-test-ca.pem", directory / "standin-cert.pem", directory / "standin-key.pem")
    paths.ca_file.write_bytes(ca.public_bytes(pem))
    paths.cert_file.write_bytes(leaf.public_bytes(pem))
    paths.key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    paths.key_file.chmod(0o600)
    return paths


def standin_documents(base_url: str) -> dict[str, dict[str, Any]]:
    """Path → pinned document with `client_id` = the stand-in URL, for every profile that has one.
    A document with a `jwks_uri` (ChatGPT's: `private_key_jwt`) gets the stand-in's JWK Set
    instead, whose key the doctor signs with (`standin_client_key`), and ES256 as its algorithm."""
    documents: dict[str, dict[str, Any]] = {}
    for profile in PROFILES.values():
        if profile.cimd_url is None:
            continue
        host = urlsplit(profile.cimd_url).hostname or ""
        url = mapped_cimd_url(profile, {host: base_url})
        assert url is not None
        document = pinned_document(profile, url)
        if "jwks_uri" in document:
            document["jwks_uri"] = base_url + STANDIN_JWKS_PATH
            document["token_endpoint_auth_signing_alg"] = STANDIN_KEY_ALG
        documents[urlsplit(url).path] = document
    documents[STANDIN_JWKS_PATH] = {"keys": [standin_client_key().as_dict(private=False)]}
    return documents


class StandinApp:
    """A pure ASGI app: GET a document path → the JSON document; anything else → 404."""

    def __init__(self, documents: dict[str, dict[str, Any]]) -> None:
        self.documents = documents
        self.fetches: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        document = self.documents.get(scope["path"]) if scope["method"] == "GET" else None
        self.fetches.append(scope["path"])
        body = json.dumps(document).encode() if document is not None else b'{"error": "not found"}'
        await send(
            {
                "type": "http.response.start",
                "status": 200 if document is not None else 404,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"max-age=300"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _listener(port: int) -> socket.socket:
    """A bound loopback socket, handed to uvicorn so no one can take the port in between."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@contextmanager
def serve_standin(ca: StandinCA, port: int | None = None) -> Iterator[tuple[str, StandinApp]]:
    """Serve the documents over HTTPS on 127.0.0.1 in a thread; yield (base URL, app)."""
    import uvicorn

    sock = _listener(port or 0)
    port = int(sock.getsockname()[1])
    base = f"https://127.0.0.1:{port}"
    app = StandinApp(standin_documents(base))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ssl_certfile=str(ca.cert_file),
        ssl_keyfile=str(ca.key_file),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"cimd-standin-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the CIMD stand-in on port {port} did not start")
        time.sleep(0.02)
    try:
        yield base, app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
