"""The real external IdP of these tests: npm `oidc-provider` 9.13.3 run by
tests/node/oidc/provider.mjs as a Node subprocess, in a shape given by `ProviderShape`.

`OidcProvider` starts it on a fixed loopback port (so a restart keeps the issuer), waits for
"READY" on stdout (bounded), and can stop / restart it with other keys. `signing_key()` makes
RSA keys the test keeps, so it can also forge tokens with the IdP's own key when only one claim
must be wrong. `IdpUserAgent` plays the browser: it follows the authorization request through
the provider's interaction shortcut (`X-Test-Account`) up to the redirect to the client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import anyio.to_thread
import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey
from mcp.shared.auth import AuthorizationCodeResult

from support.needs import require_node_files

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "node"
PROVIDER_SCRIPT = NODE_DIR / "oidc" / "provider.mjs"
PROVIDER_PACKAGE = NODE_DIR / "node_modules" / "oidc-provider" / "package.json"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

CHECKER_ID, CHECKER_SECRET = "checker", "checker-secret-" + "x" * 32
WEBAPP_ID, WEBAPP_SECRET = "webapp", "webapp-secret-" + "y" * 32
RS_ID, RS_SECRET = "authgate-rs", "authgate-rs-secret-" + "z" * 32
WEBAPP_REDIRECT = "http://127.0.0.1:47613/cb"  # never listened on


def require_oidc_provider() -> None:
    """Skip without Node and the npm peers; under CI=true that is a failure instead."""
    require_node_files(PROVIDER_PACKAGE)


def signing_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"}, private=True)


def static_clients() -> list[dict[str, Any]]:
    return [
        {
            "client_id": CHECKER_ID,
            "client_secret": CHECKER_SECRET,
            "grant_types": ["client_credentials"],
            "redirect_uris": [],
            "response_types": [],
        },
        {
            "client_id": WEBAPP_ID,
            "client_secret": WEBAPP_SECRET,
            "redirect_uris": [WEBAPP_REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        },
        {"client_id": RS_ID, "client_secret": RS_SECRET, "grant_types": [], "redirect_uris": [], "response_types": []},
    ]


@dataclass
class ProviderShape:
    """What tests/node/oidc/provider.mjs reads (see its header)."""

    port: int
    default_resource: str | None  # None: no default resource (access tokens for userinfo)
    issuer_path: str = ""
    trailing_slash: bool = False
    rfc8414: bool = True
    dcr: bool = True
    dcr_path: str | None = None
    s256: bool = True
    ignore_resource: bool = False
    fixed_audience: str | None = None
    opaque_resources: list[str] = field(default_factory=list)
    routes: dict[str, str] = field(default_factory=dict)
    access_token_ttl: int = 600
    clients: list[dict[str, Any]] = field(default_factory=static_clients)
    store_file: str | None = None  # state kept across stop/start (else lost with the process)
    resource_scope: str | None = None  # the resource's scopes the IdP defines (space-separated; None: mcp)
    rotate_refresh: bool | None = None  # every refresh rotates the refresh token (None: oidc-provider's default)
    refresh_delay_ms: int = 0  # a refresh is answered this much later (held in flight), once done
    dpop: bool = False  # oidc-provider's DPoP feature (RFC 9449): a token request with a proof gets a bound token


def auth0_like(port: int, mcp_url: str) -> ProviderShape:
    """Issuer ending in '/', only OIDC discovery, `resource` ignored for a tenant Default
    Audience (= the MCP URL, seed 000's fix), DCR at /oidc/register, Auth0's endpoint paths."""
    return ProviderShape(
        port=port,
        default_resource=mcp_url,
        trailing_slash=True,
        rfc8414=False,
        ignore_resource=True,
        fixed_audience=mcp_url,
        dcr_path="/oidc/register",
        routes={
            "authorization": "/authorize",
            "token": "/oauth/token",
            "jwks": "/.well-known/jwks.json",
            "revocation": "/oauth/revoke",
            "userinfo": "/userinfo",
        },
    )


def keycloak_like(port: int, mcp_url: str, realm: str = "mcp") -> ProviderShape:
    """Issuer /realms/<realm>, Keycloak's endpoint paths and DCR endpoint: the fast path's stand-in
    for Keycloak's *shape* only (it honours `resource`, has no registration policies or client
    scopes); Keycloak's quirks are proven against the real server in tests/idp/keycloak."""
    base = "/protocol/openid-connect"
    return ProviderShape(
        port=port,
        default_resource=mcp_url,
        issuer_path=f"/realms/{realm}",
        dcr_path="/clients-registrations/openid-connect",
        routes={
            "authorization": f"{base}/auth",
            "token": f"{base}/token",
            "jwks": f"{base}/certs",
            "introspection": f"{base}/token/introspect",
            "revocation": f"{base}/revoke",
            "userinfo": f"{base}/userinfo",
        },
    )


PROXY_ID, PROXY_SECRET = "authgate-proxy", "authgate-proxy-secret-" + "p" * 32


def no_dcr_upstream(port: int, callback: str) -> ProviderShape:
    """Proxy mode's upstream (seed 004's shape): no DCR, one static confidential client —
    authgate's own, redirecting to its /upstream/callback — and no default resource, so the
    access token it gets is one for userinfo (as at GitHub, Google, Entra)."""
    client = {
        "client_id": PROXY_ID,
        "client_secret": PROXY_SECRET,
        "redirect_uris": [callback],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    return ProviderShape(port=port, default_resource=None, dcr=False, clients=[client])


class OidcProvider:
    def __init__(self, workdir: Path, shape: ProviderShape, keys: list[RSAKey] | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.shape = shape
        self.keys = keys or [signing_key("k1")]
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.shape.port}{self.shape.issuer_path}" + (
            "/" if self.shape.trailing_slash else ""
        )

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.shape.port}"

    def url(self, route: str) -> str:
        return self.origin + self.shape.issuer_path + route

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        config = {**asdict(self.shape), "keys": [k.as_dict(private=True) for k in self.keys]}
        config_path = self.workdir / f"provider-{self.runs}.json"
        config_path.write_text(json.dumps(config))
        self.log_path = self.workdir / f"provider-{self.runs}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                ["node", str(PROVIDER_SCRIPT), str(config_path)],
                cwd=NODE_DIR,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        os.set_blocking(self.proc.stdout.fileno(), False)
        seen = b""
        while time.monotonic() < deadline:
            seen += self.proc.stdout.read() or b""
            if b"READY " in seen:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"oidc-provider did not start: {seen!r}\n{self.log_path.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)

    def restart(self, keys: list[RSAKey] | None = None) -> None:
        self.stop()
        if keys is not None:
            self.keys = keys
        self.start()

    # -- tokens ----------------------------------------------------------------------------

    def token_counts(self) -> dict[str, dict[str, int]]:
        """Token requests the provider answered, by grant_type: {"ok": n, "error": m}."""
        r = httpx.get(f"{self.origin}/__counts", timeout=10.0)
        r.raise_for_status()
        counts: dict[str, dict[str, int]] = r.json()
        return counts

    def discovery(self) -> dict[str, Any]:
        r = httpx.get(self.issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=10.0)
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    def client_credentials(self, resource: str, *, scope: str = "mcp") -> dict[str, Any]:
        r = httpx.post(
            self.discovery()["token_endpoint"],
            timeout=10.0,
            auth=(CHECKER_ID, CHECKER_SECRET),
            data={"grant_type": "client_credentials", "resource": resource, "scope": scope},
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def forge(
        self, claims: dict[str, Any], *, key: RSAKey | None = None, typ: str = "at+jwt", alg: str = "RS256"
    ) -> str:
        """A token signed with one of the IdP's keys (or `key`), every claim as given."""
        key = key or self.keys[0]
        header = {"alg": alg, "kid": key.kid, "typ": typ}
        return jwt.encode(header, claims, key, algorithms=[alg])


class IdpUserAgent:
    """Follows an authorization request through oidc-provider's interaction shortcut (signed in
    as `account`), stopping at the redirect to the client: returns its query parameters."""

    def __init__(self, account: str, *, max_steps: int = 12) -> None:
        self.http = httpx.Client(timeout=10.0, follow_redirects=False, headers={"X-Test-Account": account})
        self.max_steps = max_steps

    def close(self) -> None:
        self.http.close()

    def authorize(self, url: str) -> dict[str, str]:
        idp = urlsplit(url).netloc
        for _ in range(self.max_steps):
            r = self.http.get(url)
            location = r.headers.get("location")
            if r.status_code not in (302, 303) or not location:
                raise AssertionError(f"IdP answered {r.status_code} at {url}: {r.text[:500]}")
            url = urljoin(url, location)
            if urlsplit(url).netloc != idp:
                return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        raise AssertionError(f"no redirect to the client after {self.max_steps} steps")


def webapp_tokens(
    provider: OidcProvider, resource: str, *, account: str = "alice", scope: str = "mcp", nonce: bool = False
) -> dict[str, Any]:
    """The IdP's token response for `account`: the static confidential `webapp` client's
    authorization code flow with PKCE (S256) and `resource`, signed in through the IdP's
    interaction shortcut. With `scope` "openid …" and `nonce`, an ID token comes beside the
    access token."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    meta = provider.discovery()
    query = {
        "client_id": WEBAPP_ID,
        "response_type": "code",
        "redirect_uri": WEBAPP_REDIRECT,
        "scope": scope,
        "resource": resource,
        **({"nonce": secrets.token_urlsafe(8)} if nonce else {}),
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    agent = IdpUserAgent(account)
    try:
        params = agent.authorize(meta["authorization_endpoint"] + "?" + urlencode(query))
    finally:
        agent.close()
    assert "code" in params, params
    r = httpx.post(
        meta["token_endpoint"],
        auth=(WEBAPP_ID, WEBAPP_SECRET),
        timeout=10.0,
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": WEBAPP_REDIRECT,
            "code_verifier": verifier,
            "resource": resource,
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


class IdpBrowser:
    """The SDK's redirect_handler / callback_handler for a user `account` who signs in at the
    IdP through `IdpUserAgent`; keeps every authorization URL it was sent to."""

    def __init__(self, account: str) -> None:
        self.agent = IdpUserAgent(account)
        self.urls: list[str] = []
        self.params: dict[str, str] = {}

    async def redirect_handler(self, url: str) -> None:
        self.urls.append(url)
        self.params = await anyio.to_thread.run_sync(self.agent.authorize, url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert "code" in self.params, f"authorization failed: {self.params}"
        return AuthorizationCodeResult(
            code=self.params["code"], state=self.params.get("state"), iss=self.params.get("iss")
        )
