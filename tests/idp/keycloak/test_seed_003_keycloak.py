"""docs/seeds/003-keycloak.md reproduced step by step against the real Keycloak (issue 17).

The page's own blocks are run, so the page cannot drift from what works: its ```toml block is
authgate's configuration, its `<!-- seed-commands -->` block the commands (`idp check`, then
`authgate serve` exactly as written, here with the page's `strict = true`), its
`<!-- seed-playbook -->` block the validation playbook (every `# → TEXT` must print TEXT) — with
the page's placeholders replaced by the session's Keycloak realm `mcp` (built as the page's
steps 1–4 say: realms/mcp.json) and authgate's loopback URL (the one the realm's audience mapper
names). Then each row of the page's failure-mode table is produced against Keycloak and shown to
be handled or diagnosed by authgate (`test_seed_003_failure_modes_*`).

One substitution: the playbook's `authgate doctor … --client chatgpt` runs as `--client sdk`.
The session's Keycloak runs `--features=cimd` (test_cimd_keycloak.py), so every realm advertises
CIMD and the ChatGPT replay presents ChatGPT's metadata document, which Keycloak 26.7.3 cannot
parse (test_doctor_keycloak.py asserts that failure; docs/idp/keycloak.md). A realm as the page
sets it up, without the experimental feature, gets ChatGPT's DCR instead; the SDK profile replays
the same DCR → token → initialize → tools/list path.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from seeds.seed_support import SeedGate, page_block, page_text, run_playbook, substitute
from support import requirements as req
from support.external_gate import ExternalAuthgate
from support.keycloak import CHECKER_ID, KeycloakSession
from support.ports import free_port

pytestmark = pytest.mark.keycloak

PAGE = "003-keycloak.md"
PUBLIC_URL = "https://mcp.example.com"
ISSUER = "https://sso.example.com/realms/mcp"
CHATGPT_REDIRECT = "https://chatgpt.com/connector_platform_oauth_redirect"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def subs(keycloak: KeycloakSession) -> dict[str, str]:
    return {PUBLIC_URL: f"http://127.0.0.1:{keycloak.mcp_port}", ISSUER: keycloak.issuer("mcp")}


def commands(keycloak: KeycloakSession) -> tuple[str, list[str]]:
    """The page's `idp check` line, and `authgate serve`'s arguments as the page writes them."""
    lines = [line for line in page_block(PAGE, "bash", marker="seed-commands").splitlines() if line.strip()]
    serve = [shlex.split(line) for line in lines if line.startswith("authgate serve")]
    assert len(serve) == 1 and len(lines) == 2, lines
    check = next(line for line in lines if not line.startswith("authgate serve"))
    return check, serve[0][2:]


@pytest.fixture(scope="module")
def seed_gate(keycloak: KeycloakSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeedGate]:
    """`authgate serve` as the page's §3 says, with its TOML, on the port the realm's mapper names
    (one for the module: both tests read it, neither changes it)."""
    gate = SeedGate(tmp_path_factory.mktemp("seed003") / "authgate")
    _, serve_args = commands(keycloak)
    gate.server.serve_args = tuple(serve_args)  # run in the gate's workdir, where authgate.toml is
    gate.server.port = keycloak.mcp_port
    gate.server.url = f"http://127.0.0.1:{keycloak.mcp_port}"
    gate.server.env["AUTHGATE_PORT"] = str(keycloak.mcp_port)
    gate.start(substitute(page_block(PAGE, "toml"), subs(keycloak)))
    try:
        yield gate
    finally:
        gate.stop()


def token_of(keycloak: KeycloakSession, realm: str = "mcp", **form: str) -> httpx.Response:
    return httpx.post(
        f"{keycloak.issuer(realm)}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "scope": "mcp", **form},
        auth=(CHECKER_ID, keycloak.checker_secret),
        timeout=30.0,
    )


def call(url: str, token: str, **headers: str) -> httpx.Response:
    return httpx.post(url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {token}", **headers}, timeout=15)


@pytest.mark.requirement(req.ISSUE17_SEED_003_REAL_KEYCLOAK)
def test_seed_003_page_commands_and_playbook_pass_against_keycloak(
    keycloak: KeycloakSession, seed_gate: SeedGate
) -> None:
    values = subs(keycloak)
    env = {"CLIENT_ID": CHECKER_ID, "CLIENT_SECRET": keycloak.checker_secret}
    check, _ = commands(keycloak)
    out = run_playbook(check, {ISSUER: values[ISSUER]}, env, seed_gate.config_path.parent)  # §3: exit 0 passes
    assert "result: 0 failure(s)" in out, out
    playbook = page_block(PAGE, "bash", marker="seed-playbook")
    assert playbook.count("--client chatgpt") == 1  # see the module docstring
    out = run_playbook(playbook.replace("--client chatgpt", "--client sdk"), values, env, seed_gate.config_path.parent)
    # the token audience check (§5.4): the realm's mapper, not `resource`, names authgate's MCP URL
    assert f"`resource` honoured: the token's aud is ['{keycloak.mcp_url}', 'account']" in out
    assert keycloak.checker_secret not in out

    # The seed's DCR smoke test (§5.3), its own request: anonymous, a ChatGPT redirect URI.
    registration = httpx.post(
        f"{keycloak.issuer()}/clients-registrations/openid-connect",
        json={"client_name": "curl-test", "redirect_uris": [CHATGPT_REDIRECT]},
        timeout=30.0,
    )
    assert registration.status_code == 201, registration.text
    client = registration.json()
    gone = httpx.delete(
        client["registration_client_uri"],
        headers={"Authorization": f"Bearer {client['registration_access_token']}"},
        timeout=30.0,
    )
    assert gone.status_code == 204  # pruned (§4.1), through RFC 7592


@pytest.mark.requirement(req.ISSUE17_SEED_003_REAL_KEYCLOAK)
@pytest.mark.requirement(req.ISSUE17_SCOPES_EXIST_AT_IDP)
def test_seed_003_failure_modes_at_keycloak_are_named_by_authgate(
    keycloak: KeycloakSession,
    seed_gate: SeedGate,
    external_authgate: Callable[..., ExternalAuthgate],
    caplog: pytest.LogCaptureFixture,
) -> None:
    mcp_url = keycloak.mcp_url
    # `Policy 'Trusted Hosts' rejected request` — Keycloak's default policy (realm `locked`);
    # `idp check --register` names the policy to change (test_idp_check_keycloak.py).
    refused = httpx.post(
        f"{keycloak.issuer('locked')}/clients-registrations/openid-connect",
        json={"client_name": "curl-test", "redirect_uris": [CHATGPT_REDIRECT]},
        timeout=30.0,
    )
    assert refused.status_code == 403
    assert "Policy 'Trusted Hosts' rejected request to client-registration service" in refused.text

    # 401 `token aud ['account'] …` — a realm without the audience mapper (realm `noaud`).
    noaud = external_authgate(port=free_port(), issuer=keycloak.issuer("noaud"), idp_profile="keycloak")
    answer = call(noaud.mcp_url, token_of(keycloak, "noaud").json()["access_token"])
    assert answer.status_code == 401
    assert "token aud ['account'] is none of this resource's audiences" in answer.headers["www-authenticate"]

    # Never `account` among the audiences (the seed accepts several): every token of the realm
    # carries it, so another app's token would pass the audience check. authgate says so at start.
    with caplog.at_level(logging.WARNING, logger="authgate.idp"):
        blanket = external_authgate(
            port=free_port(), issuer=keycloak.issuer(), idp_profile="keycloak", audiences=[mcp_url, "account"]
        )
    assert "account is in every Keycloak token's aud" in caplog.text
    other = httpx.post(
        f"{keycloak.issuer()}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials"},
        auth=("other-app", keycloak.checker_secret),
        timeout=30.0,
    ).json()["access_token"]
    assert call(mcp_url, other).status_code == 401  # the seed's gate: another audience
    answer = call(blanket.mcp_url, other)
    assert answer.status_code == 403 and "insufficient_scope" in answer.headers["www-authenticate"]  # aud passed

    # `invalid_scope` at the authorize page — a scope the DCR client may not use (Keycloak's own
    # `service_account`); every scope the realm advertises (what ChatGPT asks for) is grantable.
    meta = httpx.get(f"{keycloak.issuer()}/.well-known/openid-configuration", timeout=30.0).json()
    assert "service_account" not in meta["scopes_supported"]  # step 1.3: hidden from the metadata
    client = httpx.post(
        meta["registration_endpoint"],
        json={"client_name": "seed-003", "redirect_uris": [CHATGPT_REDIRECT]},  # as ChatGPT: no `scope`
        timeout=30.0,
    ).json()

    def authorize(scope: str) -> httpx.Response:
        query = {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": CHATGPT_REDIRECT,
            "scope": scope,
            "state": "s",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "resource": mcp_url,
        }
        return httpx.get(meta["authorization_endpoint"], params=query, timeout=30.0)

    asked = authorize("mcp service_account")
    assert asked.status_code == 302
    assert parse_qs(urlsplit(asked.headers["location"]).query)["error"] == ["invalid_scope"]
    every = authorize(" ".join(meta["scopes_supported"]))
    assert every.status_code == 200, every.headers.get("location")
    assert "kc-form-login" in every.text  # Keycloak's login page
    httpx.delete(
        client["registration_client_uri"],
        headers={"Authorization": f"Bearer {client['registration_access_token']}"},
        timeout=30.0,
    )

    # `/token` → 401 at Keycloak with a wrong secret (HTTP Basic, as ChatGPT sends it);
    # `idp check` says the token request failed and what to check.
    wrong = httpx.post(
        meta["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=(CHECKER_ID, "not-the-secret"),
        timeout=30.0,
    )
    assert wrong.status_code == 401
    done = _idp_check(keycloak.issuer(), "--client-id", CHECKER_ID, "--resource", mcp_url, secret="not-the-secret")
    assert "client_credentials token request failed: HTTP 401" in done.stdout, done.stdout
    assert "check --client-id/--client-secret" in done.stdout

    # 401 `token issuer '…' is not '…'` — authgate told another spelling of the realm's URL:
    # Keycloak (no KC_HOSTNAME) names itself after the host it is asked by.
    other_host = keycloak.issuer().replace("127.0.0.1", "localhost")
    moved = external_authgate(port=free_port(), issuer=other_host, idp_profile="keycloak", audiences=[mcp_url])
    answer = call(moved.mcp_url, token_of(keycloak).json()["access_token"])
    assert answer.status_code == 401
    assert f"token issuer '{keycloak.issuer()}' is not '{other_host}'" in answer.headers["www-authenticate"]

    # Seed §3.1 / §4.6 / §4.9: the PRM answers at the root and at /mcp, cacheable for 5 minutes only
    # (a CDN in front keeps it no longer than that); the seed's manifest.json is not MCP's, not served.
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        prm = httpx.get(seed_gate.url + path, timeout=15.0)
        assert prm.status_code == 200 and prm.json()["authorization_servers"] == [keycloak.issuer()]
        assert prm.headers["cache-control"] == "public, max-age=300"
    assert httpx.get(seed_gate.url + "/.well-known/mcp/manifest.json", timeout=15.0).status_code == 404

    # 406 without the Accept header: the playbook's line. 403 from a browser Origin not allowed:
    token = token_of(keycloak).json()["access_token"]
    assert call(seed_gate.mcp_url, token, Origin="https://evil.example").status_code == 403
    assert call(seed_gate.mcp_url, token, Origin="https://chatgpt.com").status_code == 200  # allowed_origins

    # 401 `an ID token is not an access token` — Keycloak's ID token (typ ID), its aud a listed client id.
    id_token = httpx.post(
        meta["token_endpoint"],
        data={
            "grant_type": "password",
            "client_id": "cli-app",
            "username": "alice",
            "password": keycloak.user_password,
            "scope": "openid mcp",
        },
        timeout=30.0,
    ).json()["id_token"]
    legacy = external_authgate(
        port=free_port(), issuer=keycloak.issuer(), idp_profile="keycloak", audiences=[mcp_url, "cli-app"]
    )
    answer = call(legacy.mcp_url, id_token)
    assert answer.status_code == 401
    assert "an ID token is not an access token" in answer.headers["www-authenticate"]


@pytest.mark.requirement(req.ISSUE17_STRICT_START)
@pytest.mark.requirement(req.ISSUE17_SCOPES_EXIST_AT_IDP)
def test_serve_strict_refuses_a_realm_without_the_advertised_scope(keycloak: KeycloakSession, tmp_path: Path) -> None:
    """The page's TOML says `strict = true`: against the realm `locked` (no `mcp` client scope)
    `authgate serve` exits 2 with one line naming the setting and the fix, and never listens."""
    toml = substitute(page_block(PAGE, "toml"), subs(keycloak)).replace(
        keycloak.issuer("mcp"), keycloak.issuer("locked")
    )
    assert "strict = true" in toml
    (tmp_path / "authgate.toml").write_text(toml)
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "AUTHGATE_DATA_DIR": str(tmp_path / "d")}
    done = subprocess.run(
        [sys.executable, "-m", "authgate", "serve", "--config", "authgate.toml", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    # besides the log's own lines (log_format = "json": httpx's requests to the realm, at info)
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("authgate: configuration error: setting 'scopes': scope(s) mcp ")
    assert keycloak.issuer("locked") in lines[0] and "(refused: `strict` is on)" in lines[0]
    assert "Fix: Keycloak: Client scopes → Create client scope `mcp`" in lines[0] and "authgate `scopes`" in lines[0]


def _idp_check(issuer: str, *args: str, secret: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(sys.executable).parent), "AUTHGATE_IDP_CHECK_CLIENT_SECRET": secret}
    return subprocess.run(
        [sys.executable, "-m", "authgate", "idp", "check", issuer, "--profile", "keycloak", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )


def test_the_page_names_every_failure_mode_this_module_produces() -> None:
    """The failure-mode table of the page lists the symptoms the test above produces at Keycloak."""
    table = page_text(PAGE).split("## 6. Failure modes", 1)[1].split("\n## ", 1)[0]
    for symptom in (
        "Policy 'Trusted Hosts' rejected request",
        "token aud ['account'] is none of this resource's audiences",
        "`invalid_scope`",
        "`/token` → 401",
        "token issuer",
        "406",
        "403 from a browser client",
        "an ID token is not an access token",
        "503 with `Retry-After`",
    ):
        assert symptom in table, symptom
