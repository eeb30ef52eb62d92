"""`authgate idp check`: probe an identity provider the way authgate and MCP clients will use it.

Each finding names what was seen and, for a problem, the exact setting to change (at authgate
or at the IdP). Probes, in order: the issuer's shape for the profile; the discovery documents
(RFC 8414 and OIDC, `issuer` exact); PKCE S256; Dynamic Client Registration (a real test
registration only with `register`, deleted again via RFC 7592 where the IdP allows it); refresh
tokens; whether RFC 8707 `resource` is honoured (a client_credentials token's `aud`, when client
credentials are given); then the profile's known traps.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx

from authgate.config.issuers import issuer_problem
from authgate.errors import Unreachable
from authgate.httpx_errors import translated
from authgate.idp.discovery import Fetched, fetch_all, fetch_document
from authgate.idp.profiles import IdpProfile, get_profile, guess_profile

Level = Literal["ok", "info", "warn", "fail"]
CHECK_REDIRECT_URI = "http://127.0.0.1:9/authgate-idp-check/callback"  # never listened on


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    level: Level
    message: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class CheckOptions:
    issuer: str
    profile: str = "generic"
    register: bool = False
    client_id: str | None = None
    client_secret: str | None = None
    resource: str | None = None
    scope: str | None = None


@dataclass(slots=True)
class CheckReport:
    issuer: str
    profile: str
    findings: list[Finding] = field(default_factory=list)
    registered_client_id: str | None = None

    @property
    def failed(self) -> bool:
        return any(f.level == "fail" for f in self.findings)

    def add(self, code: str, level: Level, message: str, fix: str | None = None) -> None:
        self.findings.append(Finding(code, level, message, fix))

    def codes(self, *levels: Level) -> list[str]:
        return [f.code for f in self.findings if not levels or f.level in levels]

    def as_dict(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "profile": self.profile,
            "ok": not self.failed,
            "registered_client_id": self.registered_client_id,
            "findings": [asdict(f) for f in self.findings],
        }


def _trap_fix(profile: IdpProfile, code: str, default: str) -> str:
    return next((t.fix for t in profile.traps if t.code == code), default)


def _check_issuer_shape(report: CheckReport, profile: IdpProfile) -> None:
    problem = issuer_problem(report.issuer, profile.name)
    if problem:
        report.add("issuer-shape", "fail", problem, "authgate `issuer` = the IdP's issuer, exactly")
    guess = guess_profile(report.issuer)
    if guess and guess != profile.name:
        report.add(
            "profile",
            "warn",
            f"{report.issuer} looks like {get_profile(guess).title}",
            f'authgate `idp_profile = "{guess}"` (and --profile {guess} here)',
        )


def _issuer_mismatch(report: CheckReport, doc: Fetched) -> None:
    named = doc.issuer
    slash = named is not None and named.rstrip("/") == report.issuer.rstrip("/")
    report.add(
        "issuer-mismatch",
        "fail",
        f"{doc.url} names issuer {named!r}, not {report.issuer!r}"
        + (" (they differ only in the trailing slash, which matters)" if slash else ""),
        f'authgate `issuer = "{named}"` if that is the IdP you mean',
    )


async def _check_rfc8414(
    report: CheckReport, docs: list[Fetched], profile: IdpProfile, http: httpx.AsyncClient
) -> None:
    doc = next(d for d in docs if d.kind == "rfc8414")
    if doc.document is not None and doc.issuer == report.issuer:
        report.add("rfc8414", "ok", f"RFC 8414 metadata at {doc.url}")
        return
    if doc.document is not None:
        _issuer_mismatch(report, doc)
        return
    appended = report.issuer.rstrip("/") + "/.well-known/oauth-authorization-server"
    elsewhere = appended != doc.url and (await fetch_document(http, "rfc8414", appended)).document is not None
    report.add(
        "no-rfc8414",
        "warn",
        f"no RFC 8414 document at {doc.url} ({doc.error})"
        + (f"; the IdP serves it path-appended at {appended}, where MCP clients do not look" if elsewhere else "")
        + ": MCP clients since 2025-11-25 fall back to OIDC discovery, older clients find "
        "no authorization server",
        _trap_fix(
            profile,
            f"{profile.name}-no-rfc8414",
            "for older clients set authgate "
            "`mirror_as_metadata = true` (see docs/idp/external.md); or enable RFC 8414 metadata "
            "at the IdP",
        ),
    )


def _check_oidc(report: CheckReport, docs: list[Fetched]) -> None:
    oidc = [d for d in docs if d.kind == "oidc"]
    good = next((d for d in oidc if d.document is not None and d.issuer == report.issuer), None)
    if good is not None:
        report.add("oidc-discovery", "ok", f"OpenID Connect discovery at {good.url}")
        return
    wrong = next((d for d in oidc if d.document is not None), None)
    if wrong is not None:
        _issuer_mismatch(report, wrong)
    else:
        report.add(
            "no-oidc-discovery",
            "info",
            "no OpenID Connect discovery document (" + "; ".join(f"{d.url}: {d.error}" for d in oidc) + ")",
        )


async def check_discovery(report: CheckReport, http: httpx.AsyncClient, profile: IdpProfile) -> dict[str, Any] | None:
    """Findings on the discovery documents; the metadata to probe further, if any."""
    docs = await fetch_all(http, report.issuer)
    if all(d.status is None for d in docs):
        report.add(
            "unreachable",
            "fail",
            f"{report.issuer} is unreachable ({docs[0].error})",
            "check the issuer URL and that this machine can reach the IdP",
        )
        return None
    await _check_rfc8414(report, docs, profile, http)
    _check_oidc(report, docs)
    valid = [d.document for d in docs if d.document is not None and d.issuer == report.issuer]
    if not valid and "issuer-mismatch" not in report.codes():
        report.add(
            "no-discovery",
            "fail",
            f"no discovery document found for {report.issuer}",
            "authgate `issuer` = the IdP's issuer URL (its discovery document's `issuer` value)",
        )
    return valid[0] if valid else None


def check_metadata(report: CheckReport, meta: dict[str, Any], profile: IdpProfile) -> None:
    methods = meta.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" in methods:
        report.add("pkce", "ok", "PKCE S256 advertised")
    else:
        report.add(
            "no-s256",
            "fail",
            f"code_challenge_methods_supported is {methods!r}: MCP clients must refuse an authorization "
            "server that does not advertise S256 (ChatGPT calls it unsupported)",
            "at the IdP: enable PKCE with S256 and publish code_challenge_methods_supported",
        )
    if isinstance(meta.get("registration_endpoint"), str):
        report.add("dcr", "ok", f"Dynamic Client Registration at {meta['registration_endpoint']}")
    else:
        cimd = meta.get("client_id_metadata_document_supported") is True
        report.add(
            "no-dcr",
            "warn" if cimd else "fail",
            "no registration_endpoint: MCP clients cannot register"
            + (" (CIMD is advertised, so clients that support it still work)" if cimd else ""),
            _trap_fix(
                profile,
                f"{profile.name}-dcr",
                _trap_fix(
                    profile,
                    f"{profile.name}-no-dcr",
                    "at the IdP: enable Dynamic Client Registration; "
                    'or use authgate\'s proxy mode (auth_mode = "proxy", coming)',
                ),
            ),
        )
    grants = meta.get("grant_types_supported")
    if isinstance(grants, list) and "refresh_token" in grants:
        report.add("refresh", "ok", "refresh tokens offered (grant_types_supported)")
    else:
        report.add(
            "no-refresh",
            "warn",
            f"grant_types_supported is {grants!r}: without refresh tokens users sign in again each time "
            "the access token expires",
            "at the IdP: allow the refresh_token grant (offline access) for registered clients",
        )
    if not isinstance(meta.get("jwks_uri"), str):
        report.add(
            "no-jwks",
            "fail",
            "no jwks_uri: authgate cannot verify JWT access tokens",
            "use an IdP that publishes its keys, or set authgate `introspection_endpoint`",
        )
    if meta.get("authorization_response_iss_parameter_supported") is not True:
        report.add(
            "no-rfc9207",
            "info",
            "RFC 9207 `iss` in authorization responses is not advertised "
            "(mix-up protection; ChatGPT then uses a per-connector redirect URI)",
        )


def _jwt_part(token: str, index: int) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(parts[index] + "=" * (-len(parts[index]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


async def _client_credentials_token(
    options: CheckOptions, meta: dict[str, Any], http: httpx.AsyncClient
) -> tuple[int | None, dict[str, Any]]:
    data = {"grant_type": "client_credentials", "resource": options.resource or ""}
    if options.scope:
        data["scope"] = options.scope
    endpoint = str(meta.get("token_endpoint"))
    try:
        with translated(f"POST {endpoint}"):
            response = await http.post(endpoint, data=data, auth=(options.client_id or "", options.client_secret or ""))
    except Unreachable as exc:
        return None, {"error": exc.kind, "error_description": exc.detail}
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {}


def _judge_token(report: CheckReport, token: str, resource: str, profile: IdpProfile) -> None:
    claims = _jwt_part(token, 1)
    if claims is None:
        kind = "encrypted (JWE)" if token.count(".") == 4 else "opaque"
        report.add(
            "opaque-token",
            "warn",
            f"the access token is {kind}, so its audience cannot be read",
            _trap_fix(
                profile,
                "auth0-resource-ignored",
                "at the IdP: issue JWT access tokens for this resource; or set authgate "
                "`introspection_endpoint` and its client credentials",
            ),
        )
        return
    aud = claims.get(profile.audience_claim)
    auds = aud if isinstance(aud, list) else [aud]
    if resource in auds:
        report.add("resource", "ok", f"`resource` honoured: the token's {profile.audience_claim} is {aud!r}")
    else:
        report.add(
            "resource-ignored",
            "fail",
            f"the IdP ignored resource={resource}: the token's {profile.audience_claim} is {aud!r}",
            _trap_fix(
                profile,
                "auth0-resource-ignored",
                _trap_fix(
                    profile,
                    "keycloak-audience",
                    "at the IdP: issue tokens with aud = the MCP URL "
                    f"(RFC 8707); or, if {aud!r} names this MCP server alone, add it to authgate `audiences`",
                ),
            ),
        )
    typ = str((_jwt_part(token, 0) or {}).get("typ", "")).lower()
    if profile.sets_at_jwt_typ and typ not in ("at+jwt", "application/at+jwt"):
        report.add(
            "no-at-jwt-typ",
            "warn",
            f"the access token's typ is {typ or 'absent'!r}, not at+jwt (RFC 9068), which this profile requires",
            "authgate `jwt_require_typ = false`",
        )


async def check_resource(
    report: CheckReport, options: CheckOptions, meta: dict[str, Any], http: httpx.AsyncClient, profile: IdpProfile
) -> None:
    if not (options.client_id and options.client_secret and options.resource):
        report.add(
            "resource-untested",
            "info",
            "whether `resource` is honoured was not tested: pass "
            "--client-id/--client-secret of a client allowed client_credentials, and --resource MCP-URL",
        )
        return
    status, body = await _client_credentials_token(options, meta, http)
    token = body.get("access_token")
    if status == 200 and isinstance(token, str):
        _judge_token(report, token, options.resource, profile)
    elif body.get("error") == "invalid_target":
        report.add(
            "resource-refused",
            "fail",
            f"the IdP refused resource={options.resource} (invalid_target)",
            "at the IdP: register the MCP URL as a resource / API identifier",
        )
    else:
        report.add(
            "resource-untested",
            "warn",
            f"client_credentials token request failed: HTTP {status} "
            f"{body.get('error', '')} {body.get('error_description', '')}".rstrip(),
            "check --client-id/--client-secret and that the client may use client_credentials",
        )


async def _delete_registration(report: CheckReport, body: dict[str, Any], http: httpx.AsyncClient) -> None:
    uri, rat, client_id = (
        body.get("registration_client_uri"),
        body.get("registration_access_token"),
        body.get("client_id"),
    )
    if not (isinstance(uri, str) and isinstance(rat, str)):
        report.add(
            "registration-kept",
            "warn",
            f"the IdP offers no RFC 7592 management for client {client_id}",
            f"delete client {client_id} at the IdP by hand",
        )
        return
    try:
        with translated(f"DELETE {uri}"):
            response = await http.delete(uri, headers={"Authorization": f"Bearer {rat}"})
    except Unreachable as exc:
        response = None
        detail = exc.kind
    if response is not None and response.status_code == 204:
        report.add("registration-deleted", "ok", f"test client {client_id} deleted again (RFC 7592)")
    else:
        detail = f"HTTP {response.status_code}" if response is not None else detail
        report.add(
            "registration-kept",
            "warn",
            f"could not delete test client {client_id} ({detail})",
            f"delete client {client_id} at the IdP by hand",
        )


async def check_registration(
    report: CheckReport, meta: dict[str, Any], http: httpx.AsyncClient, profile: IdpProfile
) -> None:
    endpoint = meta.get("registration_endpoint")
    if not isinstance(endpoint, str):
        return
    metadata = {
        "client_name": "authgate idp check (safe to delete)",
        "redirect_uris": [CHECK_REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    try:
        with translated(f"POST {endpoint}"):
            response = await http.post(endpoint, json=metadata)
        body = response.json() if response.content else {}
    except (Unreachable, ValueError) as exc:
        report.add(
            "registration-failed",
            "fail",
            f"test registration failed: {exc.kind if isinstance(exc, Unreachable) else type(exc).__name__}",
        )
        return
    if response.status_code != 201 or not isinstance(body, dict) or "client_id" not in body:
        report.add(
            "registration-failed",
            "fail",
            f"test registration refused: HTTP {response.status_code} "
            f"{body.get('error', '') if isinstance(body, dict) else ''}".rstrip(),
            _trap_fix(
                profile,
                "keycloak-trusted-hosts",
                _trap_fix(profile, "auth0-dcr", "at the IdP: allow anonymous Dynamic Client Registration"),
            ),
        )
        return
    report.registered_client_id = str(body["client_id"])
    report.add("registration", "ok", f"registered test client {report.registered_client_id}")
    await _delete_registration(report, body, http)


def add_profile_traps(report: CheckReport, profile: IdpProfile) -> None:
    reported = {f.fix for f in report.findings}
    for trap in profile.traps:
        if trap.fix not in reported:
            report.add(trap.code, "info", f"known {profile.title} trap: {trap.problem}", trap.fix)


async def run_check(options: CheckOptions, http: httpx.AsyncClient) -> CheckReport:
    profile = get_profile(options.profile)
    report = CheckReport(options.issuer, profile.name)
    _check_issuer_shape(report, profile)
    meta = await check_discovery(report, http, profile)
    if meta is not None:
        check_metadata(report, meta, profile)
        if options.register:
            await check_registration(report, meta, http, profile)
        await check_resource(report, options, meta, http, profile)
    add_profile_traps(report, profile)
    return report


_LABELS = {"ok": "ok  ", "info": "info", "warn": "WARN", "fail": "FAIL"}


def render_text(report: CheckReport) -> str:
    lines = [f"authgate idp check {report.issuer} (profile {report.profile})"]
    for f in report.findings:
        lines.append(f"  {_LABELS[f.level]}  {f.code}: {f.message}")
        if f.fix and f.level != "ok":
            lines.append(f"        fix: {f.fix}")
    fails, warns = report.codes("fail"), report.codes("warn")
    lines.append(
        f"result: {len(fails)} failure(s), {len(warns)} warning(s)"
        + (f"; test client {report.registered_client_id} was registered" if report.registered_client_id else "")
    )
    return "\n".join(lines)
