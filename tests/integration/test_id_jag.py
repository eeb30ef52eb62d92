"""The jwt-bearer grant (RFC 7523 §2.1) against a real `authgate serve`: Enterprise-Managed
Authorization's Identity Assertion JWT Authorization Grant (ID-JAG,
draft-ietf-oauth-identity-assertion-authz-grant-04) exchanged by the `mcp` SDK's
`IdentityAssertionOAuthProvider`, and workload assertions (e.g. a Kubernetes service-account
token) for an operator-approved machine client.

The enterprise IdP and the workload issuer here are a TEST STAND-IN: one loopback Starlette app
serving two JWK Sets over a real socket, whose real EC keys (joserfc) sign assertions with the
draft's claims. authgate fetches the keys through its SSRF-guarded fetcher
(`cimd_allow_loopback_http`, testing only); the stand-in is tests/support/enterprise_idp.py.
Both clients are made with `authgate clients add NAME --grant jwt-bearer`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from mcp.client import Client
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

from support import requirements as req
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.dpop import DpopKey
from support.enterprise_idp import ID_JAG_TYP, JWT_BEARER, SERVICE_ACCOUNT, IssuerStandIn
from support.sdk_oauth import MemoryTokenStorage


@pytest.fixture(scope="module")
def stand_in() -> Iterator[IssuerStandIn]:
    issuers = IssuerStandIn()
    with serve_asgi_in_thread(issuers.app()) as base:
        issuers.base = base
        yield issuers


def _add_client(server: AuthgateServer, name: str, scopes: str = "mcp") -> tuple[str, str]:
    done = server.cli("clients", "add", name, "--grant", "jwt-bearer", "--scopes", scopes)
    assert done.returncode == 0, done.stderr
    fields = dict(line.split("\t", 1) for line in done.stdout.splitlines())
    return fields["client_id"], fields["client_secret"]


class Gate:
    def __init__(self, server: AuthgateServer, app: tuple[str, str], runner: str) -> None:
        self.server, self.app, self.runner = server, app, runner


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, stand_in: IssuerStandIn) -> Iterator[Gate]:
    env = {
        "AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP": "true",
        "AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000",
        "AUTHGATE_TOOL_SCOPES": json.dumps({"docs.create": ["docs.write"]}),  # offered; only admins may grant it
        "AUTHGATE_ENTERPRISE_IDPS": json.dumps(
            {
                stand_in.base: {"jwks_uri": f"{stand_in.base}/jwks"},
                f"{stand_in.base}/corp": {
                    "jwks_uri": f"{stand_in.base}/jwks",
                    "email_mapping": True,
                    "provision_users": False,
                },
            }
        ),
    }
    srv = AuthgateServer(tmp_path_factory.mktemp("idjag"), extra_env=env)
    srv.add_user()
    app = _add_client(srv, "enterprise-app", "mcp docs.write")
    runner, _ = _add_client(srv, "ci-runner")
    srv.env["AUTHGATE_WORKLOAD_ISSUERS"] = json.dumps(
        {stand_in.workload_issuer: {"jwks_uri": f"{stand_in.base}/k8s/jwks", "subjects": {SERVICE_ACCOUNT: runner}}}
    )
    srv.start()
    yield Gate(srv, app, runner)
    srv.stop()


def _token(gate: Gate, assertion: str, *, client: tuple[str, str] | None = None, **form: str) -> httpx.Response:
    data = {"grant_type": JWT_BEARER, "assertion": assertion, "resource": gate.server.mcp_url, **form}
    if client is not None:
        data |= {"client_id": client[0], "client_secret": client[1]}
    return httpx.post(gate.server.endpoint("token"), data=data, timeout=10)


def _refused(response: httpx.Response, error: str) -> str:
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == error, response.text
    return str(response.json().get("error_description", ""))


@pytest.mark.requirement(req.ISSUE16_ID_JAG_SDK_EXCHANGE)
def test_sdk_identity_assertion_provider_exchanges_an_id_jag_and_calls_a_tool(
    gate: Gate, stand_in: IssuerStandIn
) -> None:
    client_id, secret = gate.app
    asked: list[tuple[str, str]] = []

    async def fetch_id_jag(audience: str, resource: str) -> str:
        asked.append((audience, resource))
        return stand_in.id_jag(gate.server, client_id, aud=audience, resource=resource)

    async def run() -> dict[str, Any]:
        provider = IdentityAssertionOAuthProvider(
            server_url=gate.server.mcp_url,
            storage=MemoryTokenStorage(),
            client_id=client_id,
            client_secret=secret,
            issuer=gate.server.issuer,
            assertion_provider=fetch_id_jag,
            scope="mcp",
        )
        async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30.0)) as http:
            with anyio.fail_after(60):
                async with Client(streamable_http_client(gate.server.mcp_url, http_client=http)) as mcp:
                    result = await mcp.call_tool("whoami", {})
        assert not result.is_error, result.content
        if isinstance(result.structured_content, dict):
            return result.structured_content
        return dict(json.loads(next(c.text for c in result.content if isinstance(c, TextContent))))

    whoami = anyio.run(run)
    assert asked == [(gate.server.issuer, gate.server.mcp_url)]
    assert f"{stand_in.base}|employee-1" in json.dumps(whoami)  # the user linked by (iss, sub)


@pytest.mark.requirement(req.ISSUE16_ID_JAG_METADATA)
def test_metadata_advertises_the_grant_and_the_id_jag_profile(gate: Gate) -> None:
    doc = httpx.get(f"{gate.server.url}/.well-known/oauth-authorization-server", timeout=10).json()
    assert JWT_BEARER in doc["grant_types_supported"]
    assert doc["authorization_grant_profiles_supported"] == ["urn:ietf:params:oauth:grant-profile:id-jag"]


@pytest.mark.requirement(req.ISSUE16_ID_JAG_REFUSALS)
@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("wrong_audience", "invalid_grant"),
        ("wrong_resource", "invalid_grant"),
        ("scope_beyond_assertion", "invalid_scope"),
        ("expired", "invalid_grant"),
        ("untrusted_issuer", "invalid_grant"),
        ("other_client", "invalid_grant"),
    ],
)
def test_id_jag_refusals(gate: Gate, stand_in: IssuerStandIn, case: str, error: str) -> None:
    cid = gate.app[0]
    form: dict[str, str] = {}
    if case == "wrong_audience":
        assertion = stand_in.id_jag(gate.server, cid, aud=gate.server.endpoint("token"))
    elif case == "wrong_resource":
        assertion = stand_in.id_jag(gate.server, cid, resource="https://other.example/mcp")
    elif case == "scope_beyond_assertion":
        assertion, form = stand_in.id_jag(gate.server, cid, scope="mcp"), {"scope": "mcp admin"}
    elif case == "expired":
        assertion = stand_in.id_jag(gate.server, cid, iat=int(time.time()) - 900, exp=int(time.time()) - 300)
    elif case == "untrusted_issuer":
        rogue = ECKey.generate_key("P-256", parameters={"kid": "idp-1"})  # same kid, other key, other iss
        claims = {**_claims(stand_in.id_jag(gate.server, cid)), "iss": "http://127.0.0.1:9/rogue"}
        assertion = stand_in.sign(claims, key=rogue)
    else:  # an ID-JAG naming another client, presented by this one
        assertion = stand_in.id_jag(gate.server, gate.runner)
    _refused(_token(gate, assertion, client=gate.app, **form), error)


@pytest.mark.requirement(req.ISSUE16_ID_JAG_REFUSALS)
def test_a_replayed_id_jag_is_refused(gate: Gate, stand_in: IssuerStandIn) -> None:
    assertion = stand_in.id_jag(gate.server, gate.app[0])
    first = _token(gate, assertion, client=gate.app)
    assert first.status_code == 200, first.text
    assert first.json()["token_type"] == "Bearer" and "refresh_token" not in first.json()
    assert "already used" in _refused(_token(gate, assertion, client=gate.app), "invalid_grant")


@pytest.mark.requirement(req.ISSUE16_ID_JAG_REFUSALS)
def test_a_public_client_is_refused_and_open_registration_cannot_ask_for_the_grant(
    gate: Gate, stand_in: IssuerStandIn
) -> None:
    register = gate.server.endpoint("register")
    asked = httpx.post(
        register,
        json={
            "redirect_uris": ["http://127.0.0.1:9/cb"],
            "grant_types": [JWT_BEARER],
            "token_endpoint_auth_method": "none",
        },
        timeout=10,
    )
    assert asked.status_code == 400 and asked.json()["error"] == "invalid_client_metadata", asked.text
    public = httpx.post(
        register, json={"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"}, timeout=10
    ).json()["client_id"]
    assertion = stand_in.id_jag(gate.server, public)
    _refused(_token(gate, assertion, client_id=public), "unauthorized_client")


@pytest.mark.requirement(req.ISSUE16_WORKLOAD_JWT_BEARER)
def test_a_workload_assertion_gets_its_machine_client_a_token(gate: Gate, stand_in: IssuerStandIn) -> None:
    ok = _token(gate, stand_in.workload(gate.server))  # no client secret: the assertion authenticates
    assert ok.status_code == 200, ok.text
    assert ok.json()["scope"] == "mcp" and "refresh_token" not in ok.json()
    claims = jwt.decode(ok.json()["access_token"], _authgate_key(gate)).claims
    assert claims["client_id"] == gate.runner and claims["sub"] == gate.runner
    once = stand_in.workload(gate.server)
    assert _token(gate, once).status_code == 200
    assert "already used" in _refused(_token(gate, once), "invalid_grant")
    _refused(_token(gate, stand_in.workload(gate.server, aud=gate.server.endpoint("token"))), "invalid_grant")
    _refused(_token(gate, stand_in.workload(gate.server, sub="system:serviceaccount:ci:other")), "invalid_grant")


def _authgate_key(gate: Gate) -> Any:
    from joserfc.jwk import KeySet

    return KeySet.import_key_set(httpx.get(gate.server.endpoint("jwks.json"), timeout=10).json())


@pytest.mark.requirement(req.ISSUE16_JWT_BEARER_KINDS_APART)
def test_a_workload_assertion_is_refused_at_the_id_jag_path(gate: Gate, stand_in: IssuerStandIn) -> None:
    # the ID-JAG client presents a (valid) service-account token: it is not that workload's client
    _refused(_token(gate, stand_in.workload(gate.server), client=gate.app), "invalid_grant")
    # and the enterprise IdP's own JWT without the ID-JAG typ is no ID-JAG
    plain = stand_in.sign(_claims(stand_in.id_jag(gate.server, gate.app[0])), typ="JWT")
    assert "ID-JAG" in _refused(_token(gate, plain, client=gate.app), "invalid_grant")


@pytest.mark.requirement(req.ISSUE16_JWT_BEARER_KINDS_APART)
def test_an_id_jag_is_refused_at_the_workload_path(gate: Gate, stand_in: IssuerStandIn) -> None:
    # signed by the workload issuer with the ID-JAG typ: never a workload assertion
    claims = {**_claims(stand_in.workload(gate.server)), "client_id": gate.runner, "resource": gate.server.mcp_url}
    jag = stand_in.sign(claims, key=stand_in.k8s_key, typ=ID_JAG_TYP)
    assert "not a workload assertion" in _refused(_token(gate, jag), "invalid_grant")
    # the enterprise IdP's ID-JAG presented the workload way (no client authentication, the runner's id)
    _refused(_token(gate, stand_in.id_jag(gate.server, gate.runner), client_id=gate.runner), "invalid_client")


def _claims(assertion: str) -> dict[str, Any]:
    import base64

    body = assertion.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


@pytest.mark.requirement(req.ISSUE16_ID_JAG_USER_LINKING)
def test_users_are_linked_by_subject_or_verified_email_and_their_roles_narrow_the_grant(
    gate: Gate, stand_in: IssuerStandIn
) -> None:
    app, corp = gate.app[0], f"{stand_in.base}/corp"
    # a provisioned employee holds no role: of the ID-JAG's scopes only the baseline one
    employee = _token(
        gate, stand_in.id_jag(gate.server, app, sub="employee-2", scope="mcp docs.write"), client=gate.app
    )
    assert employee.status_code == 200 and employee.json()["scope"] == "mcp", employee.text
    assert (
        jwt.decode(employee.json()["access_token"], _authgate_key(gate)).claims["sub"] == f"{stand_in.base}|employee-2"
    )
    # the first IdP maps no email: alice's address there is another (provisioned) user, not alice
    other = _token(
        gate, stand_in.id_jag(gate.server, app, sub="e-3", email="alice", scope="mcp docs.write"), client=gate.app
    )
    assert other.status_code == 200 and other.json()["scope"] == "mcp", other.text
    # the corp IdP maps verified emails: alice (admin) may grant both scopes
    alice = _token(
        gate,
        stand_in.id_jag(gate.server, app, iss=corp, sub="a-1", email="alice", scope="mcp docs.write"),
        client=gate.app,
    )
    assert alice.status_code == 200 and alice.json()["scope"] == "mcp docs.write", alice.text
    assert not jwt.decode(alice.json()["access_token"], _authgate_key(gate)).claims["sub"].startswith(corp)
    # corp provisions no one: an unknown address, or alice's unverified, links to no user
    for changes in ({"email": "nobody@corp.example"}, {"email": "alice", "email_verified": False}):
        jag = stand_in.id_jag(gate.server, app, iss=corp, sub="a-2", **changes)
        assert "no local user" in _refused(_token(gate, jag, client=gate.app), "invalid_grant")


@pytest.mark.requirement(req.ISSUE16_ID_JAG_DRAFT_RULES)
def test_an_id_jag_without_iat_is_refused(gate: Gate, stand_in: IssuerStandIn) -> None:
    jag = stand_in.id_jag(gate.server, gate.app[0], iat=None)  # iat is REQUIRED (the draft §3.1)
    assert "iat" in _refused(_token(gate, jag, client=gate.app), "invalid_grant")


@pytest.mark.requirement(req.ISSUE16_ID_JAG_DRAFT_RULES)
def test_a_key_bound_id_jag_needs_a_dpop_proof_by_its_key(gate: Gate, stand_in: IssuerStandIn) -> None:
    key, stranger = DpopKey(), DpopKey()

    def present(proof_key: DpopKey | None) -> httpx.Response:
        jag = stand_in.id_jag(gate.server, gate.app[0], cnf={"jkt": key.jkt})
        data = {"grant_type": JWT_BEARER, "assertion": jag, "resource": gate.server.mcp_url}
        data |= {"client_id": gate.app[0], "client_secret": gate.app[1]}
        proof = {} if proof_key is None else {"DPoP": proof_key.proof("POST", gate.server.endpoint("token"))}
        return httpx.post(gate.server.endpoint("token"), data=data, headers=proof, timeout=10)

    assert "DPoP proof" in _refused(present(None), "invalid_grant")  # §8.6.1.2.2
    assert "cnf.jkt" in _refused(present(stranger), "invalid_grant")  # §8.6.1.2.1 item 4
    bound = present(key)
    assert bound.status_code == 200, bound.text
    assert bound.json()["token_type"] == "DPoP"
    assert jwt.decode(bound.json()["access_token"], _authgate_key(gate)).claims["cnf"]["jkt"] == key.jkt


@pytest.mark.requirement(req.ISSUE16_ID_JAG_DRAFT_RULES)
def test_a_tenant_claim_scopes_the_subject(gate: Gate, stand_in: IssuerStandIn) -> None:
    subjects = []
    for tenant in ("tenant-a", "tenant-b"):
        jag = stand_in.id_jag(gate.server, gate.app[0], sub="shared-7", tenant=tenant)
        ok = _token(gate, jag, client=gate.app)
        assert ok.status_code == 200, ok.text
        subjects.append(jwt.decode(ok.json()["access_token"], _authgate_key(gate)).claims["sub"])
    assert subjects == [f"{stand_in.base}|tenant-a|shared-7", f"{stand_in.base}|tenant-b|shared-7"]
    bad = stand_in.id_jag(gate.server, gate.app[0], sub="shared-7", tenant="a|b")
    _refused(_token(gate, bad, client=gate.app), "invalid_grant")


@pytest.mark.requirement(req.ISSUE16_ID_JAG_DRAFT_RULES)
def test_an_id_jag_with_authorization_details_is_refused(gate: Gate, stand_in: IssuerStandIn) -> None:
    details = [{"type": "mcp_tools", "actions": ["read"]}]  # RFC 9396, not implemented by authgate
    jag = stand_in.id_jag(gate.server, gate.app[0], scope=None, authorization_details=details)
    assert "authorization_details" in _refused(_token(gate, jag, client=gate.app), "invalid_grant")


@pytest.mark.requirement(req.ISSUE16_ID_JAG_REFUSALS)
def test_a_resource_not_served_is_invalid_target_and_leaves_the_id_jag_usable(
    gate: Gate, stand_in: IssuerStandIn
) -> None:
    jag = stand_in.id_jag(gate.server, gate.app[0])
    _refused(_token(gate, jag, client=gate.app, resource="https://other.example/mcp"), "invalid_target")
    ok = _token(gate, jag, client=gate.app)  # the refusal did not spend the jti
    assert ok.status_code == 200, ok.text
