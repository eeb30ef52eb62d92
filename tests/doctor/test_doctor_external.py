"""The doctor against authgate in external mode (issue 5, done-when 3): a real IdP (npm
`oidc-provider` 9.13.3, tests/node/oidc/provider.mjs) in the Auth0-like and the Keycloak-like
shape, and authgate in external mode in front of it, guarding the built-in `whoami` server —
both started with the tests/idp harness (`idp_peers`, `external_gate`: `build_app` under
uvicorn, as `authgate serve` runs it).

The doctor must follow authgate's PRM to the IdP's issuer, find the IdP's metadata (Auth0-like:
only OIDC discovery and an issuer ending in '/'; Keycloak-like: a path issuer, its document
path-appended), compare the issuer exactly, see S256, register by DCR *at the IdP* (and delete
that client again, RFC 7592), and reach `tools/list` through authgate with an IdP token whose
`aud` is the MCP URL.

Sign-in: the doctor's headless `--user/--password-stdin` login knows authgate's own forms, not
an IdP's sign-in pages, so the runs use the two documented ways for an external IdP:

* `--token`, every profile: an access token the test got from the IdP for user alice (the
  static `webapp` client's code flow through the IdP's interaction shortcut, as tests/idp does);
* `--interactive`, the loopback clients: the test plays the user's browser — it opens the URL
  the doctor prints, signs in at the IdP and lands on the doctor's loopback redirect URI. This
  covers what `--token` skips: the authorization request at the IdP with the client the doctor
  registered there, RFC 9207 `iss`, and the token request at the IdP.

The Keycloak-like shape (`support.idp_peers.keycloak_like`) is the fast path, without Java: it
stands in for Keycloak's issuer path, endpoint paths and DCR endpoint only — it honours `resource`
instead of an audience mapper, has no registration policies or client scopes, and types its tokens
`at+jwt`. The same things against a real Keycloak: tests/idp/keycloak/test_doctor_keycloak.py
(every profile through authgate in front of Keycloak).
"""

from __future__ import annotations

import functools
import io
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from authgate.config.settings import load_settings
from authgate.doctor import login
from authgate.doctor.findings import DoctorReport, Finding
from authgate.doctor.flow import DoctorOptions
from authgate.doctor.profiles import PROFILES
from authgate.doctor.runner import run_doctor
from authgate.mcpapp.whoami import build_app as build_whoami
from authgate.server.app import build_app
from support import requirements as req
from support.authgate_server import serve_asgi_in_thread
from support.external_gate import ExternalAuthgate
from support.idp_peers import (
    IdpUserAgent,
    OidcProvider,
    ProviderShape,
    auth0_like,
    keycloak_like,
    require_oidc_provider,
    webapp_tokens,
)
from support.ports import free_port

SHAPES: dict[str, tuple[Callable[[int, str], ProviderShape], str]] = {
    "auth0-like": (auth0_like, "auth0"),
    "keycloak-like": (keycloak_like, "keycloak"),
}
DCR_PATHS = {"auth0-like": "/oidc/register", "keycloak-like": "/realms/mcp/clients-registrations/openid-connect"}
BROWSER_TIMEOUT = 30.0
# Steps `--token` does not replay (the doctor says so with a skip): sign-in and its `iss`.
TOKEN_MODE_SKIPS = {"authorize", "authorize.iss"}


@dataclass(frozen=True)
class Deployment:
    shape: str
    provider: OidcProvider
    gate: ExternalAuthgate


@pytest.fixture(scope="module", params=list(SHAPES))
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """oidc-provider in one shape, and authgate (external mode, that IdP's profile) in front of it;
    one pair per shape for the module (the doctor's registrations are deleted again)."""
    require_oidc_provider()  # a skip without Node / node_modules; under CI=true a failure
    shape: str = request.param
    make_shape, profile = SHAPES[shape]
    workdir = tmp_path_factory.mktemp(f"doctor-{shape}")
    port = free_port()  # known before the IdP starts: the MCP URL is the IdP's audience
    provider = OidcProvider(workdir / "idp", make_shape(free_port(), f"http://127.0.0.1:{port}/mcp"))
    provider.start()
    try:
        settings = load_settings(
            None,
            public_url=f"http://127.0.0.1:{port}",
            port=port,
            data_dir=workdir / "authgate",
            auth_mode="external",
            issuer=provider.issuer,
            idp_profile=profile,
        )
        with serve_asgi_in_thread(build_app(settings, build_whoami()), port, lifespan="on") as url:
            yield Deployment(shape, provider, ExternalAuthgate(url, settings))
    finally:
        provider.stop()


class UsersBrowser(io.StringIO):
    """What `--interactive` prints to: the user reads the authorization URL and opens it. Here
    the browser signs in at the IdP as `account` (the IdP's interaction shortcut, through
    tests/idp's `IdpUserAgent`) and lands on the doctor's loopback redirect URI with the IdP's
    answer, in a thread, while the doctor waits."""

    def __init__(self, account: str) -> None:
        super().__init__()
        self.account = account
        self.opened: list[str] = []
        self.failures: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def write(self, text: str) -> int:
        for url in re.findall(r"^\s+(https?://\S+)\s*$", text, re.MULTILINE):
            self.opened.append(url)
            self.threads.append(threading.Thread(target=self._open, args=(url,), daemon=True))
            self.threads[-1].start()
        return super().write(text)

    def _open(self, url: str) -> None:
        agent = IdpUserAgent(self.account)
        try:
            answer = agent.authorize(url)  # the query of the IdP's redirect to the client
            redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]
            landed = httpx.get(f"{redirect_uri}?{urlencode(answer)}", timeout=10.0, trust_env=False)
            assert landed.status_code == 200, landed.text
        except BaseException as exc:  # noqa: BLE001 - reported by the test after the run
            self.failures.append(exc)
        finally:
            agent.close()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=BROWSER_TIMEOUT)
        assert not any(t.is_alive() for t in self.threads), "the browser did not finish"
        assert not self.failures, self.failures


def _findings(report: DoctorReport) -> dict[str, Finding]:
    assert len(report.clients) == 1
    return {f.step: f for f in report.clients[0].findings}


def _by_status(report: DoctorReport, *statuses: str) -> dict[str, str]:
    return {f.step: f"{f.seen} | {f.fix}" for c in report.clients for f in c.findings if f.status in statuses}


def _assert_found_the_idp(deployment: Deployment, report: DoctorReport) -> None:
    """PRM → the IdP's issuer, metadata at the IdP, exact issuer, S256, DCR at the IdP (deleted
    again), the token's audience, tools/list through authgate."""
    provider, gate = deployment.provider, deployment.gate
    found = _findings(report)
    for step in (
        "prm.discovery",
        "prm.resource",
        "as.discovery",
        "as.issuer",
        "as.metadata",
        "as.pkce",
        "register",
        "token.claims",
        "mcp.initialize",
        "mcp.tools_list",
        "mcp.invalid_token",
        "register.cleanup",
    ):
        assert found[step].status == "pass", (step, found[step])
    assert found["prm.resource"].seen.startswith(f"resource = {gate.mcp_url} ")
    # as.issuer compares the metadata's issuer with the PRM's authorization_servers[0]: a pass
    # naming the IdP's issuer means the PRM named exactly that issuer.
    assert found["as.issuer"].seen == f"issuer = {provider.issuer} (exact match)"
    metadata_url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
    if deployment.shape == "auth0-like":  # no RFC 8414 document: the doctor fell back to OIDC discovery
        assert provider.issuer.endswith("/")
    else:  # a path issuer: RFC 8414 and OIDC path insertion miss, the path-appended OIDC document is it
        assert urlsplit(provider.issuer).path == "/realms/mcp"
    assert found["as.discovery"].seen == f"metadata at {metadata_url} (OIDC discovery)"
    assert found["as.pkce"].seen == "code_challenge_methods_supported = ['S256']"
    [registration] = report.registrations
    assert registration.method == "dcr" and registration.registration_client_uri is not None
    assert registration.registration_client_uri.startswith(provider.origin + DCR_PATHS[deployment.shape] + "/")
    assert registration.outcome == "deleted (RFC 7592)"  # oidc-provider supports RFC 7592 management
    assert found["token.claims"].seen.startswith(f"aud = {gate.mcp_url}, scope = ")
    assert "mcp" in found["token.claims"].seen.split("scope = ")[1]
    assert found["mcp.tools_list"].seen == "tools/list → 1 tool(s): whoami"


@pytest.mark.requirement(req.RFC9728_2_AUTHORIZATION_SERVERS)
@pytest.mark.requirement(req.RFC8414_3_3_ISSUER_IDENTICAL)
@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_OIDC_DISCOVERY)
@pytest.mark.requirement(req.RFC7591_3_REGISTRATION)
@pytest.mark.requirement(req.RFC8707_2_AUDIENCE)
@pytest.mark.parametrize("client", list(PROFILES))
async def test_every_profile_passes_against_external_mode_with_an_idp_token(
    deployment: Deployment,
    client: str,
) -> None:
    gate = deployment.gate
    token = str(webapp_tokens(deployment.provider, gate.mcp_url)["access_token"])
    report = await run_doctor(DoctorOptions(url=gate.mcp_url, clients=(client,), token=token))

    failed = _by_status(report, "fail")
    if client == "inspector":
        # A true finding about the IdP, not about authgate: oidc-provider serves no CORS on its
        # registration endpoint (OPTIONS → 404, no Access-Control-Allow-Origin on the answer;
        # its discovery, jwks and token routes have CORS, registration has none by design), so
        # the Inspector's in-browser DCR would be blocked by the browser. Everything authgate
        # serves to the browser (cors.mcp, cors.discovery) passes.
        assert list(failed) == ["cors.oauth"], failed
        assert DCR_PATHS[deployment.shape] in failed["cors.oauth"] and "→ 404" in failed["cors.oauth"]
        found = _findings(report)
        assert found["cors.mcp"].status == found["cors.discovery"].status == "pass"
    else:
        assert failed == {}
        assert report.exit_status() == 0
    assert _by_status(report, "warn") == {}
    assert set(_by_status(report, "skip")) == TOKEN_MODE_SKIPS  # both say "--token given"
    assert _findings(report)["token"].status == "info"  # "using the access token given with --token"
    _assert_found_the_idp(deployment, report)
    if PROFILES[client].modern:
        assert _findings(report)["mcp.discover"].status == "pass"


@pytest.mark.requirement(req.RFC9207_ISS)
@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_PKCE_S256)
@pytest.mark.requirement(req.RFC8707_2_AUDIENCE)
@pytest.mark.parametrize("client", ["claude-code", "sdk"])  # loopback redirect URIs on free ports
async def test_loopback_clients_sign_in_at_the_idp_interactively(
    deployment: Deployment,
    client: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider, gate = deployment.provider, deployment.gate
    browser = UsersBrowser("alice")
    # `loopback_sign_in` prints the URL to `out` (stderr by default): hand it the user's browser.
    monkeypatch.setattr(login, "loopback_sign_in", functools.partial(login.loopback_sign_in, out=browser))
    report = await run_doctor(
        DoctorOptions(url=gate.mcp_url, clients=(client,), interactive=True, interactive_timeout=BROWSER_TIMEOUT)
    )
    browser.join()

    assert _by_status(report, "fail", "warn", "skip") == {}
    assert report.exit_status(strict=True) == 0
    _assert_found_the_idp(deployment, report)
    found = _findings(report)
    assert found["authorize"].status == "pass" and found["authorize"].seen.startswith("code received for http://")
    assert found["authorize.iss"].seen == f"iss = {provider.issuer} (RFC 9207)"
    assert found["token"].status == "pass" and found["token"].seen.startswith("access token via none")
    # The one URL the user opened was the IdP's, with the client the doctor registered there.
    [opened] = browser.opened
    query = parse_qs(urlsplit(opened).query)
    assert opened.startswith(provider.discovery()["authorization_endpoint"] + "?")
    assert query["client_id"] == [report.registrations[0].client_id]
    assert query["code_challenge_method"] == ["S256"] and query["resource"] == [gate.mcp_url]
