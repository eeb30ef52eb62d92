"""A second real IdP in external mode: Debian's `glewlwyd` 2.7.5 (OIDC plugin with RFC 9068 JWT
access tokens, RFC 8707 `resource` -> `aud`, PKCE S256, DCR, refresh tokens).

The fixture runs /usr/bin/glewlwyd as a foreground subprocess on a loopback port with a config
file and a SQLite DB made in tmp_path from the package's own SQLite init script (the dbconfig-common
copy, else the one under /usr/share/doc/glewlwyd/database). That script creates the `admin` user with
glewlwyd's documented default password `password`: acceptable here, the DB is throwaway and the
server listens on 127.0.0.1 only. As that administrator the fixture then, through glewlwyd's
admin API, adds the `mcp` scope, the user `alice` and the OIDC plugin instance.

glewlwyd's DCR stores every registered client as confidential, even one registered with
`token_endpoint_auth_method=none`; its token endpoint then refuses the public client
(`unauthorized_client`). The test fixes that as an administrator would: it flips the new client
to `confidential=false` through the admin API, before the code is redeemed.

The headless "browser": glewlwyd's /auth answers with a redirect to its login page carrying a
`callback_url`; the user signs in with POST /api/auth/ (JSON, sets the session cookie), grants
the client its scopes with PUT /api/auth/grant/{client_id}, and the callback URL plus
`g_continue` (what the login page appends) redirects to the client with the code.

Under CI=true a missing glewlwyd fails (run scripts/test.sh, which installs it); else it skips.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult
from mcp_types import CallToolResult, TextContent

from support import requirements as req
from support.external_gate import ExternalAuthgate
from support.idp_peers import signing_key
from support.ports import free_port
from support.sdk_oauth import MemoryTokenStorage, public_client

GLEWLWYD_BINARIES = ("/usr/bin/glewlwyd", "/usr/sbin/glewlwyd")
# The package's SQLite schema + seed data; the dbconfig-common copy survives images that drop /usr/share/doc.
INIT_SQL = (
    Path("/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3"),
    Path("/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz"),
)
GLEWLWYD_LIB = Path("/usr/lib/glewlwyd")
ADMIN_USER, ADMIN_PASSWORD = "admin", "password"  # the shipped init script's default admin
USER, USER_PASSWORD = "alice", "alice-password-" + "a" * 16
PLUGIN = "oidc"
REDIRECT_URI = "http://127.0.0.1:38972/oauth/callback"  # never listened on
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
FLOW_TIMEOUT = 60.0


def glewlwyd_binary() -> str:
    """The glewlwyd executable; skips without it (fails under CI=true)."""
    found = next((b for b in GLEWLWYD_BINARIES if os.access(b, os.X_OK)), None) or shutil.which("glewlwyd")
    if found and any(p.exists() for p in INIT_SQL):
        return found
    msg = (
        "glewlwyd is not installed (Debian package `glewlwyd`: /usr/bin/glewlwyd and its SQLite "
        f"init script {INIT_SQL[0]}); run `bash scripts/test.sh`, which installs it"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


class Glewlwyd:
    """glewlwyd on 127.0.0.1:`port`, its config and SQLite DB in `workdir`."""

    def __init__(self, binary: str, workdir: Path, port: int) -> None:
        self.binary, self.workdir, self.port = binary, workdir, port
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "glewlwyd.log"
        self.admin: httpx.Client | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.origin}/api/{PLUGIN}"

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def start(self) -> None:
        db = self.workdir / "glewlwyd.db"
        script = next(p for p in INIT_SQL if p.exists())
        sql = gzip.decompress(script.read_bytes()) if script.suffix == ".gz" else script.read_bytes()
        with sqlite3.connect(db) as con:
            con.executescript(sql.decode())
        con.close()
        config = self.workdir / "glewlwyd.conf"
        config.write_text(f"""\
port={self.port}
bind_address="127.0.0.1"
external_url="{self.origin}"
login_url="login.html"
api_prefix="api"
static_files_path="/usr/share/glewlwyd/webapp/"
allow_origin="*"
log_mode="console"
log_level="INFO"
cookie_secure=0
cookie_same_site="empty"
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="{GLEWLWYD_LIB}/user"
user_middleware_module_path="{GLEWLWYD_LIB}/user_middleware"
client_module_path="{GLEWLWYD_LIB}/client"
user_auth_scheme_module_path="{GLEWLWYD_LIB}/scheme"
plugin_module_path="{GLEWLWYD_LIB}/plugin"
hash_algorithm="SHA512"
database = {{
  type = "sqlite3"
  path = "{db}"
}};
""")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(config)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.origin}/config", timeout=1.0).status_code == 200:
                    self.admin = httpx.Client(base_url=f"{self.origin}/api", timeout=10.0)
                    self._ok(
                        self.admin.post("/auth/", json={"username": ADMIN_USER, "password": ADMIN_PASSWORD}),
                        "admin sign-in",
                    )
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"glewlwyd did not start on port {self.port}:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.admin is not None:
            self.admin.close()
            self.admin = None
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)

    def _ok(self, r: httpx.Response, what: str) -> httpx.Response:
        assert r.status_code == 200, f"glewlwyd {what}: {r.status_code} {r.text}\n{self.log_tail()}"
        return r

    # -- the administrator's setup, through the admin API ------------------------------------

    def provision(self, mcp_url: str) -> None:
        assert self.admin is not None
        self._ok(
            self.admin.post(
                "/scope/",
                json={
                    "name": "mcp",
                    "display_name": "MCP",
                    "description": "MCP tools through authgate",
                    "password_required": True,
                    "password_max_age": 0,
                    "scheme": {},
                },
            ),
            "add scope mcp",
        )
        self._ok(
            self.admin.post(
                "/user/",
                json={
                    "username": USER,
                    "password": USER_PASSWORD,
                    "name": "Alice",
                    "enabled": True,
                    "scope": ["openid", "mcp", "g_profile"],
                },
            ),
            "add user",
        )  # g_profile: to grant consent
        key = signing_key("glewlwyd-1")
        parameters = {
            "iss": self.issuer,
            "jwt-type": "rsa",
            "jwt-key-size": "256",
            "default-kid": "glewlwyd-1",
            "jwks-private": json.dumps({"keys": [key.as_dict(private=True)]}),
            "jwks-show": True,
            "access-token-duration": 600,
            "refresh-token-duration": 3600,
            "code-duration": 600,
            "refresh-token-rolling": True,
            "allow-non-oidc": True,  # MCP clients ask for `mcp`, not necessarily `openid`
            "auth-type-code-enabled": True,
            "auth-type-refresh-enabled": True,
            "auth-type-token-enabled": False,
            "auth-type-id-token-enabled": True,
            "auth-type-none-enabled": False,
            "auth-type-password-enabled": False,
            "auth-type-client-enabled": False,
            "scope": [],
            "additional-parameters": [],
            "claims": [],
            "secret-type": "public",  # `sub` is the same for every client
            "allowed-scope": ["openid", "mcp"],
            "pkce-allowed": True,
            "pkce-method-plain-allowed": False,
            "register-client-allowed": True,
            "register-client-auth-scope": [],
            "register-client-credentials-scope": [],
            "register-client-management-allowed": True,
            "register-resource-specify-allowed": False,
            "register-resource-default": [],
            # RFC 8707: `resource` is honoured for scope mcp, and becomes the access token's `aud`
            "resource-allowed": True,
            "resource-scope": {"mcp": [mcp_url]},
            "resource-client-property": "",
            "resource-scope-and-client-property": False,
            "resource-change-allowed": True,
            "name-claim": "no",
            "email-claim": "no",
            "scope-claim": "no",
            "address-claim": {"type": "no"},
            "request-parameter-allow": False,
            "session-management-allowed": False,
        }
        self._ok(
            self.admin.post(
                "/mod/plugin/",
                json={
                    "module": "oidc",
                    "name": PLUGIN,
                    "display_name": "OpenID Connect",
                    "parameters": parameters,
                    "order_rank": 0,
                    "readonly": False,
                },
            ),
            "add OIDC plugin instance",
        )

    def client(self, client_id: str) -> dict[str, Any]:
        assert self.admin is not None
        body: dict[str, Any] = self._ok(self.admin.get(f"/client/{client_id}"), "get client").json()
        return body

    def make_public(self, client_id: str) -> None:
        """What an administrator does for a DCR client meant to be public."""
        assert self.admin is not None
        client = self.client(client_id)
        client["confidential"] = False
        client.pop("source", None)
        self._ok(self.admin.put(f"/client/{client_id}", json=client), "set confidential=false")


@pytest.fixture
def glewlwyd(tmp_path: Path, mcp_port: int) -> Iterator[Glewlwyd]:
    server = Glewlwyd(glewlwyd_binary(), tmp_path / "glewlwyd", free_port())
    server.start()
    try:
        server.provision(f"http://127.0.0.1:{mcp_port}/mcp")
        yield server
    finally:
        server.stop()


class GlewlwydBrowser:
    """redirect_handler / callback_handler: alice signs in at glewlwyd and consents; in between,
    the administrator turns the just-registered client public."""

    def __init__(self, server: Glewlwyd) -> None:
        self.server = server
        self.http = httpx.Client(timeout=10.0, follow_redirects=False)
        self.urls: list[str] = []
        self.params: dict[str, str] = {}
        self.confidential_at_registration: bool | None = None

    def close(self) -> None:
        self.http.close()

    def _authorize(self, url: str) -> dict[str, str]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        client_id = query["client_id"]
        self.confidential_at_registration = bool(self.server.client(client_id).get("confidential"))
        self.server.make_public(client_id)
        r = self.http.get(url)
        login = urljoin(url, r.headers.get("location", ""))
        assert r.status_code == 302 and urlsplit(login).path.endswith("/login.html"), (r.status_code, login)
        callback = parse_qs(urlsplit(login).query)["callback_url"][0]
        r = self.http.post(f"{self.server.origin}/api/auth/", json={"username": USER, "password": USER_PASSWORD})
        assert r.status_code == 200, f"sign-in: {r.status_code} {r.text}"
        grant = ",".join(query.get("scope", "").split())
        r = self.http.put(f"{self.server.origin}/api/auth/grant/{client_id}", json={"scope": grant})
        assert r.status_code == 200, f"grant: {r.status_code} {r.text}"
        r = self.http.get(callback + ("&" if "?" in callback else "?") + "g_continue")
        location = r.headers.get("location", "")
        assert r.status_code == 302 and location.startswith(REDIRECT_URI), (
            r.status_code,
            location,
            self.server.log_tail(),
        )
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    async def redirect_handler(self, url: str) -> None:
        self.urls.append(url)
        self.params = await anyio.to_thread.run_sync(self._authorize, url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert "code" in self.params, f"authorization failed: {self.params}"
        return AuthorizationCodeResult(
            code=self.params["code"], state=self.params.get("state"), iss=self.params.get("iss")
        )


def _whoami(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    text = next(c.text for c in result.content if isinstance(c, TextContent))
    payload: dict[str, Any] = json.loads(text)
    return payload


def _jwt_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


@pytest.mark.requirement(req.RFC9068_EXTERNAL_IDP)
async def test_sdk_client_signs_in_at_glewlwyd_and_calls_whoami_through_authgate(
    glewlwyd: Glewlwyd,
    external_authgate: Callable[..., ExternalAuthgate],
    mcp_port: int,
) -> None:
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    gate = external_authgate(issuer=glewlwyd.issuer, idp_profile="generic")
    browser, storage = GlewlwydBrowser(glewlwyd), MemoryTokenStorage()
    seen: list[tuple[str, str, int]] = []
    provider = public_client(
        gate.mcp_url, "sdk glewlwyd test", REDIRECT_URI, storage, browser.redirect_handler, browser.callback_handler
    )

    async def log(response: httpx2.Response) -> None:
        seen.append((response.request.method, str(response.request.url), response.status_code))

    try:
        async with httpx2.AsyncClient(
            auth=provider, timeout=httpx2.Timeout(30.0), event_hooks={"response": [log]}
        ) as http:
            with anyio.fail_after(FLOW_TIMEOUT):
                async with Client(streamable_http_client(gate.mcp_url, http_client=http)) as client:
                    tools = [t.name for t in (await client.list_tools()).tools]
                    who = _whoami(await client.call_tool("whoami", {}))
    finally:
        browser.close()

    assert "whoami" in tools
    assert storage.tokens is not None and storage.client_info is not None
    header, claims = _jwt_part(storage.tokens.access_token, 0), _jwt_part(storage.tokens.access_token, 1)
    # glewlwyd's token: RFC 9068 header and claims, `aud` from `resource`, its own opaque `sub`
    assert header["typ"] == "at+jwt"
    assert claims["iss"] == glewlwyd.issuer and claims["aud"] == mcp_url
    assert claims["client_id"] == storage.client_info.client_id
    assert who["authenticated"] is True and who["subject"] == claims["sub"] != USER
    assert who["client_id"] == storage.client_info.client_id
    assert "mcp" in who["scopes"]
    # DCR at glewlwyd stored the client as confidential; the administrator made it public.
    assert browser.confidential_at_registration is True
    assert glewlwyd.client(storage.client_info.client_id)["confidential"] is False
    assert storage.client_info.client_secret is None
    # The whole AS leg happened at glewlwyd: DCR, PKCE S256 with `resource`, the code from it.
    at_idp = [(m, urlsplit(u).path, s) for m, u, s in seen if urlsplit(u).netloc == f"127.0.0.1:{glewlwyd.port}"]
    assert ("POST", "/api/oidc/register", 200) in at_idp
    assert ("POST", "/api/oidc/token", 200) in at_idp
    query = parse_qs(urlsplit(browser.urls[0]).query)
    assert query["code_challenge_method"] == ["S256"] and query["resource"] == [mcp_url]
    assert not any(
        urlsplit(u).netloc == urlsplit(gate.url).netloc and urlsplit(u).path in ("/token", "/register")
        for _, u, _ in seen
    )
