"""The authorization code flow as the client runs it: the authorization request (PKCE S256,
RFC 8707 `resource`, its trailing-slash variant), RFC 9207 `iss`, the token request with the
client's auth method, and what the token says (`aud`, `scope`)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from authgate.doctor import login
from authgate.doctor.findings import Verdict, excerpt, fail, info, ok, skip, warn
from authgate.doctor.flow import NO_CREDENTIALS, Flow

_AUTHZ_FIXES = {
    "invalid_target": "accept the MCP URL as an RFC 8707 resource at /authorize and /token",
    "invalid_scope": "accept the scopes this client asks for (see scope= above), or advertise only grantable ones",
    "unauthorized_client": "allow this client the authorization_code grant",
    "access_denied": "the user (or a policy) denied access: check consent and the user's rights",
    "invalid_request": "see error_description; the request is what this client really sends",
}
_TOKEN_FIXES = {
    "invalid_client": "accept this client's token endpoint authentication ({method})",
    "invalid_grant": "the code was refused: check redirect_uri matching (any port on loopback) and PKCE S256",
    "invalid_target": "accept the MCP URL as resource at /token too (RFC 8707 §2.2)",
    "invalid_request": "see error_description; this is the request the client really sends",
    "unsupported_grant_type": "support the authorization_code grant",
}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)[:96]
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorization_url(flow: Flow, resource: str | None, challenge: str, state: str) -> str:
    assert flow.client is not None
    params = {
        "response_type": "code",
        "client_id": flow.client.client_id,
        "redirect_uri": flow.client.redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if resource:
        params["resource"] = resource
    if flow.scope:
        params["scope"] = flow.scope
        if flow.profile.name == "sdk" and "offline_access" in flow.scope.split():
            params["prompt"] = "consent"  # OIDC Core §11, as the SDK does
    endpoint = str(flow.meta("authorization_endpoint"))
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)


async def authorize(flow: Flow) -> Verdict:
    assert flow.client is not None
    flow.verifier, challenge = pkce_pair()
    flow.state = secrets.token_urlsafe(24)
    url = authorization_url(flow, flow.resource, challenge, flow.state)
    mode = flow.options.credentials
    if mode == "token":
        flow.missing["auth_response"] = "--token given: sign-in is not replayed"
        flow.authorize_ok = True  # not replayed; the trailing-slash probe still tells something
        return skip("--token given: the doctor uses that token instead of signing in")
    if mode == "none":
        flow.missing["auth_response"] = NO_CREDENTIALS
        verdict = await _probe(flow, url, flow.resource, "sign-in skipped: " + NO_CREDENTIALS.split(":")[0])
        flow.authorize_ok = True if verdict.status == "pass" else None
        return verdict
    if mode == "interactive" and not flow.profile.loopback_redirect:
        flow.missing["auth_response"] = "interactive sign-in needs a loopback redirect URI"
        return skip(
            f"{flow.profile.label} redirects to {flow.client.redirect_uri}, which the doctor cannot "
            "receive; use --user NAME --password-stdin or --token"
        )
    try:
        if mode == "password":
            assert flow.options.username is not None and flow.options.password is not None
            result = await login.form_sign_in(
                url,
                flow.client.redirect_uri,
                flow.options.username,
                flow.options.password,
                timeout=flow.options.timeout,
            )
        else:
            result = await login.loopback_sign_in(
                url, flow.client.redirect_uri, timeout=flow.options.interactive_timeout
            )
    except login.SignInError as exc:
        flow.missing["auth_response"] = "sign-in did not complete"
        return _explain_cimd(flow, fail(exc.seen, exc.fix))
    return _authorization_response(flow, result.params)


def cimd_fetch_fix(cimd_url: str | None, client_id: str) -> str:
    """What to do when the server could not fetch a CIMD client's document: most often it has
    no way out to the client's host (no internet, a firewall), as on a test machine."""
    real = cimd_url or client_id
    host = urlsplit(real).hostname or real
    if client_id != real:  # --cimd-host-map: the stand-in's copy was not fetched
        return (
            f"the server could not fetch the stand-in's copy at {client_id}: start it with "
            "AUTHGATE_CIMD_CA_FILE=<the stand-in's test CA> and AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP=true "
            "(testing only; docs/doctor.md, 'Testing the CIMD path offline')"
        )
    return (
        f"the server cannot reach {host}: its CIMD fetch of {client_id} failed (the server's log says why). "
        f"Let it reach {host} over HTTPS (DNS, firewall, outbound proxy). On a machine without internet, "
        f"test with a local stand-in: --cimd-host-map {host}=https://127.0.0.1:PORT "
        "(docs/doctor.md, 'Testing the CIMD path offline')"
    )


def _explain_cimd(flow: Flow, verdict: Verdict) -> Verdict:
    """A CIMD client refused because the server could not fetch its document: say which host."""
    if verdict.status != "fail" or verdict.fix != login.CIMD_FETCH_FIX or flow.client is None:
        return verdict
    if flow.client.via != "cimd":
        return verdict
    return fail(verdict.seen, cimd_fetch_fix(flow.profile.cimd_url, flow.client.client_id))


def _authorization_response(flow: Flow, params: dict[str, str]) -> Verdict:
    if error := params.get("error"):
        flow.missing["auth_response"] = f"the authorization server answered error={error}"
        return fail(
            f"authorization error={error}: {params.get('error_description', '')} (resource={flow.resource})",
            _AUTHZ_FIXES.get(error, "see error_description"),
        )
    if params.get("state") != flow.state:
        flow.missing["auth_response"] = "the state did not round-trip"
        return fail(f"state {params.get('state')!r} is not the one sent", "return the request's state unchanged")
    if not params.get("code"):
        flow.missing["auth_response"] = "no code"
        return fail("redirect without code or error", "return code (and state, iss) to the redirect URI")
    flow.auth_response, flow.authorize_ok = params, True
    return ok(f"code received for {flow.client.redirect_uri if flow.client else '?'} (Location read, not followed)")


async def _probe(flow: Flow, url: str, resource: str | None, note: str) -> Verdict:
    """GET the authorization URL with a fresh cookie jar; classify without signing in."""
    response = await flow.wire.request("GET", url)
    location = response.headers.get("location", "")
    if response.is_redirect and flow.client and login.lands_on(location, flow.client.redirect_uri):
        params = login.params_of(location)
        if error := params.get("error"):
            return fail(
                f"resource={resource}: error={error} {params.get('error_description', '')}".rstrip(),
                _AUTHZ_FIXES.get(error, "see error_description"),
            )
        return ok(f"resource={resource}: answered with a code at once (consent remembered); {note}")
    if response.status_code == 200 or response.is_redirect:
        where = f"redirect to {excerpt(location, 80)}" if response.is_redirect else "a sign-in page"
        return ok(f"resource={resource}: accepted ({where}); {note}")
    return _explain_cimd(
        flow,
        fail(
            f"resource={resource}: GET {urlsplit(url).path} → {response.status_code}: "
            f"{login.page_text(response.text)!r}",
            login.fix_for_page(response.text),
        ),
    )


async def resource_variant(flow: Flow) -> Verdict:
    """The same request with the resource's trailing-slash variant, as sent by a client whose
    user typed the URL that way."""
    assert flow.resource is not None
    variant = flow.resource[:-1] if flow.resource.endswith("/") else flow.resource + "/"
    _, challenge = pkce_pair()
    verdict = await _probe(
        flow,
        authorization_url(flow, variant, challenge, secrets.token_urlsafe(16)),
        variant,
        "not signed in (probe only)",
    )
    if verdict.status == "fail" and "invalid_target" in verdict.seen:
        return info(
            verdict.seen,
            "users who paste the URL with a trailing slash will fail: accept it as an "
            "alias of the resource, or tell them the exact URL",
        )
    return verdict


async def authorize_iss(flow: Flow) -> Verdict:
    assert flow.auth_response is not None
    iss, issuer = flow.auth_response.get("iss"), flow.meta("issuer")
    advertised = flow.meta("authorization_response_iss_parameter_supported") is True
    if iss is None and advertised:
        flow.auth_response, flow.missing["auth_response"] = None, "the client rejects a response without iss"
        return fail(
            "no iss although authorization_response_iss_parameter_supported is true",
            "add iss=<issuer> to every authorization response (RFC 9207 §2)",
        )
    if iss is None:
        return warn(
            "no iss (and not advertised): no mix-up protection; ChatGPT then uses a per-connection callback URL",
            "implement RFC 9207: send iss and advertise authorization_response_iss_parameter_supported: true",
        )
    if iss != issuer:
        flow.auth_response, flow.missing["auth_response"] = None, "the client rejects a response whose iss differs"
        return fail(
            f"iss {iss!r} ≠ issuer {issuer!r}", "send iss exactly equal to the metadata's issuer (RFC 9207 §2.4)"
        )
    if not advertised:
        return warn(f"iss = {iss} but not advertised", "advertise authorization_response_iss_parameter_supported: true")
    return ok(f"iss = {iss} (RFC 9207)")


def _token_request(flow: Flow) -> tuple[dict[str, str], dict[str, str]]:
    assert flow.client is not None and flow.auth_response is not None and flow.verifier is not None
    c = flow.client
    form = {
        "grant_type": "authorization_code",
        "code": flow.auth_response["code"],
        "redirect_uri": c.redirect_uri,
        "client_id": c.client_id,
        "code_verifier": flow.verifier,
    }
    if flow.resource:
        form["resource"] = flow.resource
    headers = flow.base_headers()
    if c.auth_method == "client_secret_basic" and c.client_secret:
        basic = f"{quote(c.client_id, safe='')}:{quote(c.client_secret, safe='')}"  # RFC 6749 §2.3.1
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    elif c.auth_method == "client_secret_post" and c.client_secret:
        form["client_secret"] = c.client_secret
    elif c.auth_method == "private_key_jwt" and c.assertion_key is not None:
        form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        form["client_assertion"] = _client_assertion(c.client_id, c.assertion_key, str(flow.meta("issuer")))
    return form, headers


def _client_assertion(client_id: str, key: Any, issuer: str) -> str:
    """RFC 7523 §2.2 with draft-ietf-oauth-rfc7523bis: aud is the issuer, as a single string."""
    from joserfc import jwt  # only for a stand-in client that signs

    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": issuer, "iat": now, "exp": now + 60}
    claims["jti"] = secrets.token_urlsafe(16)
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])


async def token(flow: Flow) -> Verdict:
    if flow.options.token:
        flow.access_token = flow.options.token
        return info("using the access token given with --token")
    if flow.auth_response is None:
        flow.missing["access_token"] = flow.missing.get("auth_response", "no authorization code")
        return skip(flow.missing["access_token"])
    assert flow.client is not None
    if flow.client.auth_method == "private_key_jwt" and flow.client.assertion_key is None:
        flow.missing["access_token"] = "the token request needs ChatGPT's private key"
        return skip("ChatGPT would authenticate with private_key_jwt signed by its own key; the doctor cannot")
    form, headers = _token_request(flow)
    response = await flow.wire.request("POST", str(flow.meta("token_endpoint")), data=form, headers=headers)
    flow.cors_seen["token"] = response.headers
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
        error = body.get("error", "") if isinstance(body, dict) else ""
        desc = body.get("error_description", "") if isinstance(body, dict) else excerpt(response.text)
        flow.missing["access_token"] = "the token request failed"
        fix = _TOKEN_FIXES.get(error, "see error_description").format(method=flow.client.auth_method)
        if error == "invalid_client" and flow.client.via == "cimd" and flow.profile.name == "chatgpt":
            fix = (
                'accept "none" for ChatGPT\'s CIMD client: its document prefers private_key_jwt but lists '
                '["none", "private_key_jwt"] in token_endpoint_auth_methods_supported, and ChatGPT sends '
                "none to servers that do not advertise private_key_jwt"
            )
        return fail(f"POST token ({flow.client.auth_method}) → {response.status_code} {error}: {desc}", fix)
    if str(body.get("token_type", "")).lower() != "bearer":
        flow.missing["access_token"] = "not a bearer token"
        return fail(f"token_type {body.get('token_type')!r}", 'issue token_type "Bearer" (RFC 6750)')
    flow.tokens, flow.access_token = body, str(body["access_token"])
    return ok(
        f"access token via {flow.client.auth_method}: expires_in={body.get('expires_in')}, "
        f"scope={body.get('scope')!r}, refresh_token={'yes' if body.get('refresh_token') else 'no'}"
    )


def jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


async def token_claims(flow: Flow) -> Verdict:
    assert flow.access_token is not None
    claims = jwt_claims(flow.access_token)
    if claims is None:
        return info("opaque access token: its audience is checked by the MCP requests below")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else list(aud or [])
    resource = flow.resource or flow.url
    granted = str((flow.tokens or {}).get("scope") or claims.get("scope") or claims.get("scp") or "")
    if resource not in audiences:
        return fail(
            f"token aud = {aud!r}, not {resource}",
            "issue tokens whose aud is the requested resource (RFC 8707; Auth0: Resource Parameter "
            "Compatibility Profile, Keycloak: an audience mapper)",
        )
    needed = (flow.challenge.get("scope") or "").split() if flow.challenge else []
    if lacking := [s for s in needed if s not in granted.split()]:
        return warn(
            f"aud ok; scope {granted!r} lacks {' '.join(lacking)} named in the challenge",
            "grant the scopes the resource server's challenge names",
        )
    return ok(f"aud = {aud}, scope = {granted!r}")
