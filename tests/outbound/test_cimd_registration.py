"""CIMD registration end to end, over real TLS: authgate serves its own Client ID Metadata
Document at an https URL, and another authgate (embedded mode, a CIMD authorization server)
fetches it, authorizes a person with that URL as the client id and issues the token (issue 15).

Two loopback authgates cannot do CIMD over plain http (the draft's client_id is an https URL), so
the client-side authgate runs behind a TLS-terminating front (tests/support/tls_front.py) with a
certificate from a test CA (`authgate.doctor.standin.make_test_ca`, 127.0.0.1 in its SAN); the
remote AS trusts that CA through its TESTING-ONLY `cimd_ca_file`, and `cimd_allow_loopback_http`
lets its SSRF guard dial a loopback address (both exist for the doctor's CIMD stand-in).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from authgate.config.settings import load_settings
from authgate.doctor.standin import make_test_ca
from authgate.outbound import OutboundClient, OutboundSettings
from authgate.outbound.client_document import PATH, client_document, document_url
from authgate.outbound.registration import ClientProfile
from authgate.server.app import build_app
from support import requirements as req
from support.authgate_server import AuthgateServer
from support.dpop import claims_of
from support.headless import HeadlessUserAgent
from support.tls_front import tls_front

PROVIDERS = json.dumps({"remote": {"kind": "mcp", "mcp_url": "https://remote.example/mcp"}})


@pytest.mark.requirement(req.ISSUE15_CIMD_DOCUMENT)
def test_a_cimd_as_fetches_authgates_document_over_https_and_issues_to_it(
    tmp_path: Path, authgate_factory: Callable[..., AuthgateServer]
) -> None:
    ca = make_test_ca(tmp_path / "ca")
    remote = authgate_factory(AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP="true", AUTHGATE_CIMD_CA_FILE=str(ca.ca_file))
    client_side = AuthgateServer(tmp_path / "client-side", extra_env={"AUTHGATE_CONNECTION_PROVIDERS": PROVIDERS})
    with tls_front(ca.cert_file, ca.key_file, client_side.port) as https_base:
        client_side.env["AUTHGATE_PUBLIC_URL"] = https_base
        client_side.start()
        try:
            url = f"{https_base}{PATH}"
            served = httpx.get(url, verify=ssl.create_default_context(cafile=ca.ca_file), timeout=10)
            assert served.status_code == 200, served.text
            document = served.json()
            assert document["client_id"] == url  # CIMD: the document names its own URL
            assert document["redirect_uris"] == [f"{https_base}/connect/callback"]
            assert document["token_endpoint_auth_method"] == "none"
            assert "max-age=3600" in served.headers["cache-control"]
            token = asyncio.run(_authorize_at(remote, url, f"{https_base}/connect/callback"))
        finally:
            client_side.stop()
    claims = claims_of(token)
    assert claims["client_id"] == url and claims["iss"] == remote.issuer


async def _authorize_at(remote: AuthgateServer, cimd_url: str, redirect_uri: str) -> str:
    """authgate's outbound client at the remote: CIMD chosen (the AS advertises it), the person
    signs in and consents there; the authorization response is read, not followed."""

    async def browser(authorization_url: str) -> str:
        with HeadlessUserAgent() as ua:
            answer = await ua.authorize_async(authorization_url, remote.username, remote.password)
        assert answer.code, answer
        return answer.location

    settings = OutboundSettings(
        server_url=remote.mcp_url,
        profile=ClientProfile(redirect_uri=redirect_uri, cimd_url=cimd_url),
        allow_loopback_http=True,
    )
    client = OutboundClient(settings, browser)
    try:
        return await client.on_unauthorized(None)
    finally:
        await client.aclose()


@pytest.mark.requirement(req.ISSUE15_CIMD_DOCUMENT)
def test_the_document_is_routed_only_for_an_https_public_url(tmp_path: Path) -> None:
    def paths(public_url: str) -> set[str]:
        settings = load_settings(None, data_dir=tmp_path, public_url=public_url, connection_providers=PROVIDERS)
        return {getattr(route, "path", "") for route in build_app(settings, _noop).router.routes}

    assert "/oauth/client-metadata.json" in paths("https://gate.example.com")
    assert "/base/oauth/client-metadata.json" in paths("https://gate.example.com/base")
    assert "/oauth/client-metadata.json" not in paths("http://127.0.0.1:8000")  # CIMD needs https
    assert document_url("http://127.0.0.1:8000") is None and client_document("http://localhost") is None
    assert document_url("https://gate.example.com/base/") == "https://gate.example.com/base/oauth/client-metadata.json"


async def _noop(scope: dict[str, object], receive: object, send: object) -> None:
    raise AssertionError("not called")
