"""How the client gets a `client_id`: its client ID metadata document when it has one and the
server allows it, otherwise RFC 7591 dynamic registration; and removing what was registered
(RFC 7592) at the end."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from authgate.doctor.findings import Registration, Verdict, excerpt, fail, info, ok, warn
from authgate.doctor.flow import ClientCredentials, Flow
from authgate.doctor.profiles import (
    CHATGPT,
    SDK,
    concrete_redirect_uri,
    mapped_cimd_url,
    pinned_document,
)

_SECRET_METHODS = ("client_secret_basic", "client_secret_post")


def select_scope(flow: Flow) -> str | None:
    """The scope the client asks for. MCP 2025-11-25: the challenge's `scope`, else the PRM's
    `scopes_supported`; the SDK then falls back to the AS's and adds `offline_access`
    (SEP-2207). ChatGPT asks for every scope the AS advertises."""
    as_scopes = flow.meta("scopes_supported")
    if flow.profile.scope_strategy == "as_all":
        return " ".join(as_scopes) if isinstance(as_scopes, list) and as_scopes else None
    challenged = flow.challenge.get("scope") if flow.challenge else None
    prm_scopes = (flow.prm or {}).get("scopes_supported")
    scope = challenged or (" ".join(prm_scopes) if isinstance(prm_scopes, list) and prm_scopes else None)
    if flow.profile is SDK:
        if scope is None and isinstance(as_scopes, list) and as_scopes:
            scope = " ".join(as_scopes)
        if (
            scope
            and isinstance(as_scopes, list)
            and "offline_access" in as_scopes
            and "offline_access" not in scope.split()
        ):
            scope += " offline_access"
    return scope


def _uses_cimd(flow: Flow) -> str | None:
    """The (possibly stand-in) CIMD URL when this client would present it instead of registering."""
    url = mapped_cimd_url(flow.profile, flow.options.cimd_host_map)
    if url is None or flow.meta("client_id_metadata_document_supported") is not True:
        return None
    if flow.profile.cimd_needs_none and "none" not in (flow.meta("token_endpoint_auth_methods_supported") or []):
        return None  # Claude presents its document only to servers that accept public clients
    return url


def _cimd_client(flow: Flow, url: str) -> ClientCredentials:
    document = pinned_document(flow.profile, url)
    redirect = str(document["redirect_uris"][0])
    parts = urlsplit(redirect)
    if flow.profile.loopback_redirect and parts.port is None:  # portless loopback: any port
        redirect = redirect.replace(f"//{parts.hostname}/", f"//{parts.hostname}:{flow.port}/", 1)
    advertised = flow.meta("token_endpoint_auth_methods_supported") or []
    method = str(document.get("token_endpoint_auth_method", "none"))
    if flow.profile is CHATGPT and method == "private_key_jwt" and "private_key_jwt" not in advertised:
        method = "none"  # ChatGPT authenticates as a public client when the AS lacks private_key_jwt
    key = None
    if method == "private_key_jwt" and url != flow.profile.cimd_url:  # a stand-in serves the document
        from authgate.doctor.standin import standin_client_key  # its JWK Set holds this key

        key = standin_client_key()
    return ClientCredentials(client_id=url, redirect_uri=redirect, auth_method=method, via="cimd", assertion_key=key)


async def register(flow: Flow) -> Verdict:
    flow.scope = select_scope(flow)
    if (url := _uses_cimd(flow)) is not None:
        flow.client = _cimd_client(flow, url)
        flow.registration = Registration(flow.profile.name, url, "cimd", outcome="nothing to remove (CIMD)")
        return ok(f"presents its client ID metadata document: client_id={url} (no registration)")
    endpoint = flow.meta("registration_endpoint")
    if not endpoint and flow.profile.register_fallback:
        endpoint = f"{flow.origin}/register"  # the SDK's 2025-03-26 fallback
    if not endpoint:
        flow.missing["client"] = f"{flow.profile.label} has no way to get a client_id from this server"
        cimd = "CIMD is not offered to it" if flow.profile.cimd_url else f"{flow.profile.label} has no CIMD document"
        return fail(
            f"no registration_endpoint and {cimd}",
            "enable dynamic client registration (registration_endpoint), or support CIMD with "
            'client_id_metadata_document_supported and auth method "none"',
        )
    return await _dcr(flow, str(endpoint))


async def _dcr(flow: Flow, endpoint: str) -> Verdict:
    iss = flow.meta("authorization_response_iss_parameter_supported") is True
    redirect = concrete_redirect_uri(flow.profile, flow.port, iss_supported=iss)
    body: dict[str, Any] = {**flow.profile.dcr_body, "redirect_uris": [redirect]}
    if flow.profile is SDK and flow.scope:
        body["scope"] = flow.scope
    response = await flow.wire.request("POST", endpoint, json=body, headers=flow.base_headers())
    flow.cors_seen["register"] = response.headers
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code not in (200, 201) or not isinstance(answer, dict) or "client_id" not in answer:
        flow.missing["client"] = "dynamic client registration failed"
        return _refused(response.status_code, answer, response.text, endpoint, redirect)
    method = str(answer.get("token_endpoint_auth_method") or body["token_endpoint_auth_method"])
    secret = answer.get("client_secret")
    flow.registration = Registration(
        flow.profile.name,
        str(answer["client_id"]),
        "dcr",
        registration_client_uri=answer.get("registration_client_uri"),
        registration_access_token=answer.get("registration_access_token"),
    )
    if method == "private_key_jwt" or (method in _SECRET_METHODS and not secret):
        flow.missing["client"] = "the registration cannot be used"
        lacking = "no client_secret" if not secret else "no key to sign with"
        return fail(
            f"registered with token_endpoint_auth_method={method} but {lacking}",
            f"honour the requested method {body['token_endpoint_auth_method']} (RFC 7591 §3.2.1)",
        )
    flow.client = ClientCredentials(str(answer["client_id"]), redirect, method, "dcr", str(secret) if secret else None)
    seen = f"registered client_id={answer['client_id']} ({method}, redirect {redirect})"
    if method != body["token_endpoint_auth_method"]:
        return warn(f"{seen}; asked for {body['token_endpoint_auth_method']}", "keep the requested auth method")
    if response.status_code == 200:
        return warn(f"{seen}; answered 200", "answer 201 Created (RFC 7591 §3.2.1)")
    return ok(seen)


def _refused(status: int, answer: Any, text: str, endpoint: str, redirect: str) -> Verdict:
    error = answer.get("error", "") if isinstance(answer, dict) else ""
    desc = answer.get("error_description", "") if isinstance(answer, dict) else excerpt(text)
    seen = f"POST {endpoint} → {status} {error}: {desc}".rstrip(": ")
    if status in (401, 403):
        return fail(
            seen,
            "allow anonymous registration: MCP clients send no initial access token "
            "(Keycloak: relax the Trusted Hosts policy; Okta: DCR needs an admin token)",
        )
    if error == "invalid_redirect_uri" or "redirect" in str(desc).lower():
        return fail(seen, f"accept the client's redirect URI {redirect}")
    if status == 429:
        return fail(seen, "registration is rate limited: raise the limit or wait")
    if status == 404:
        return fail(seen, "serve dynamic client registration at the advertised registration_endpoint")
    return fail(seen, "accept the client's RFC 7591 registration request (see the error above)")


async def cleanup(flow: Flow) -> Verdict:
    """RFC 7592 §2.3: DELETE the registration with its registration access token."""
    reg = flow.registration
    assert reg is not None
    if reg.method == "cimd":
        return info(f"nothing registered: {reg.client_id} is a CIMD client_id")
    if flow.options.keep_clients:
        reg.outcome = "kept (--keep-clients)"
        return info(f"client {reg.client_id} stays registered (--keep-clients)")
    if not reg.registration_client_uri or not reg.registration_access_token:
        reg.outcome = "left registered (the server does not support RFC 7592)"
        return info(
            f"client {reg.client_id} stays registered: the server does not support RFC 7592 "
            "(no registration_client_uri / registration_access_token)",
            "remove it on the server if it matters (authgate prunes idle clients after client_idle_days)",
        )
    response = await flow.wire.request(
        "DELETE",
        reg.registration_client_uri,
        headers={**flow.base_headers(), "Authorization": f"Bearer {reg.registration_access_token}"},
    )
    if response.status_code in (200, 204):
        reg.outcome = "deleted (RFC 7592)"
        return ok(f"deleted client {reg.client_id} (RFC 7592 → {response.status_code})")
    reg.outcome = f"delete refused ({response.status_code})"
    return warn(
        f"DELETE {reg.registration_client_uri} → {response.status_code}",
        "answer 204 to a DELETE with the registration access token (RFC 7592 §2.3)",
    )
