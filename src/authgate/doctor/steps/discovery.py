"""From the first unauthenticated request to the authorization server's metadata:
HTTPS, the 401 challenge, RFC 9728 PRM discovery and `resource`, RFC 8414 discovery with the
exact `issuer` comparison, PKCE S256."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from authgate.doctor import messages
from authgate.doctor.findings import Verdict, excerpt, fail, ok, warn
from authgate.doctor.flow import Flow, is_loopback
from authgate.doctor.profiles import NEEDS_PATH_PRM, NEEDS_ROOT_PRM
from authgate.doctor.wire import bearer_challenge

PRM = "oauth-protected-resource"


def well_known(url: str, name: str) -> str:
    """RFC 8414 §3.1 / RFC 9728 §3.1: insert `/.well-known/<name>` between host and path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/.well-known/{name}{parts.path.rstrip('/')}"


async def url_https(flow: Flow) -> Verdict:
    scheme = urlsplit(flow.url).scheme.lower()
    if scheme == "https":
        return ok("HTTPS")
    if scheme == "http" and is_loopback(flow.url):
        return ok("plain http on loopback: fine for local testing (clients require HTTPS elsewhere)")
    if scheme == "http":
        return fail(
            f"{flow.url} uses plain http on a non-loopback host",
            "serve the MCP endpoint over HTTPS (OAuth 2.1 §1.5; ChatGPT and Claude refuse http)",
        )
    return fail(f"{flow.url} is not an http(s) URL", "give the doctor the MCP endpoint URL, e.g. https://host/mcp")


async def mcp_challenge(flow: Flow) -> Verdict:
    """The client's first MCP request carries no token; only a 401 makes it sign in."""
    message = messages.first_message(flow.profile)
    answer = await flow.wire.rpc(flow.url, message, messages.headers(flow.profile, message))
    flow.challenge_headers = answer.headers
    method = message["method"]
    if answer.status == 401:
        flow.signin = True
        flow.challenge = bearer_challenge(answer.headers)
        return ok(f"POST {method} without a token → 401")
    flow.missing["signin"] = f"the server answered {answer.status} without a token, so the client never signs in"
    if answer.status == 200:
        return fail(
            f"POST {method} without a token → 200: the endpoint is open and clients never start "
            "sign-in (Claude signs in only on a 401)",
            "require a bearer token on the MCP endpoint; answer 401 with "
            'WWW-Authenticate: Bearer resource_metadata="…"',
        )
    if answer.status == 403:
        why = "a refused Origin" if "origin" in answer.text.lower() else "403"
        return fail(
            f"POST {method} without a token → 403 ({why}): clients start sign-in only on 401",
            "answer 401 + WWW-Authenticate when no token is sent; keep 403 for insufficient_scope "
            "and refused Origins (add this client's Origin to the allow-list)",
        )
    if 300 <= answer.status < 400:
        return fail(
            f"POST {method} → {answer.status} to {answer.headers.get('location', '?')}",
            "give clients the final MCP URL: they do not follow redirects on POST",
        )
    if answer.status in (404, 405):
        return fail(
            f"POST {method} → {answer.status}: no MCP endpoint at {flow.url}",
            "give the doctor the exact Streamable HTTP endpoint URL (usually …/mcp)",
        )
    return fail(
        f"POST {method} without a token → {answer.status}: {excerpt(answer.text)!r}",
        'answer 401 with WWW-Authenticate: Bearer resource_metadata="…" when no token is sent',
    )


async def www_authenticate(flow: Flow) -> Verdict:
    ch = flow.challenge
    if ch is None:  # RFC 9110 §11.6.1 requires it; 2025-11-25 clients fall back to the well-known URLs
        return warn(
            "401 without a WWW-Authenticate: Bearer challenge; clients can only guess the well-known URLs",
            'send WWW-Authenticate: Bearer resource_metadata="<PRM URL>", scope="…" (RFC 6750 §3, RFC 9728 §5.1)',
        )
    metadata, scope = ch.get("resource_metadata"), ch.get("scope")
    shown = f"Bearer resource_metadata={metadata or '(none)'}, scope={scope or '(none)'}"
    if ch.problem is not None:  # what a strict client reads from it is only what parsed
        return fail(
            f"{shown}: the challenge is malformed ({ch.problem})",
            'quote every value that is not a token: resource_metadata="https://…" (RFC 9110 §11.2)',
        )
    if metadata is None:
        return warn(
            f"{shown}: no resource_metadata; 2025-06-18 clients rely on it, others fall back to the well-known URLs",
            'add resource_metadata="<absolute PRM URL>" to the challenge (RFC 9728 §5.1)',
        )
    parts = urlsplit(metadata)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return fail(
            f"{shown}: resource_metadata is not an absolute URL",
            "use the absolute PRM URL, e.g. https://host/.well-known/oauth-protected-resource/mcp",
        )
    return ok(shown)


def _prm_candidates(flow: Flow) -> list[str]:
    """MCP 2025-11-25: the header's URL, then path-suffixed, then the root well-known URL."""
    urls = []
    if flow.challenge is not None and (header := flow.challenge.get("resource_metadata")):
        urls.append(header)
    if urlsplit(flow.url).path not in ("", "/"):
        urls.append(well_known(flow.url, PRM))
    urls.append(well_known(flow.origin, PRM))
    return list(dict.fromkeys(urls))


def _usable_prm(body: Any) -> bool:
    servers = body.get("authorization_servers") if isinstance(body, dict) else None
    return (
        isinstance(body, dict)
        and isinstance(body.get("resource"), str)
        and isinstance(servers, list)
        and bool(servers)
        and all(isinstance(s, str) for s in servers)
    )


async def prm_discovery(flow: Flow) -> Verdict:
    path_url, root_url = well_known(flow.url, PRM), well_known(flow.origin, PRM)
    found: dict[str, int] = {}  # url -> 200 when usable, else minus the status seen
    candidates = _prm_candidates(flow)
    for url in dict.fromkeys([*candidates, path_url, root_url]):
        response, body = await flow.wire.get_json(url, flow.discovery_headers())
        found[url] = 200 if _usable_prm(body) and response.status_code == 200 else -response.status_code
        if flow.prm is None and found[url] > 0 and url in candidates:
            flow.prm, flow.prm_url = body, url
            flow.as_url = body["authorization_servers"][0]
    if flow.prm is None:
        tried = ", ".join(f"{u} → {-s}" for u, s in found.items())
        flow.missing["prm"] = "no protected resource metadata was found"
        return fail(
            f"no usable PRM (resource + authorization_servers) at: {tried}",
            f"serve RFC 9728 metadata at {path_url} and {root_url}",
        )
    seen = f"PRM at {flow.prm_url}"
    if urlsplit(flow.url).path not in ("", "/") and found.get(path_url, 0) <= 0:
        return warn(
            f"{seen}, but not at {path_url} ({-found.get(path_url, 0)})",
            f"also serve it at {path_url}: " + "; ".join(NEEDS_PATH_PRM) + " would not find it",
        )
    if found.get(root_url, 0) <= 0:
        return warn(
            f"{seen}, but not at the root {root_url} ({-found.get(root_url, 0)})",
            f"also serve it at {root_url}: " + "; ".join(NEEDS_ROOT_PRM) + " would not find it",
        )
    return ok(f"{seen} (also at the other well-known location)")


def _parent_of(parent: str, child: str) -> bool:
    p, c = urlsplit(parent), urlsplit(child)
    return (p.scheme, p.netloc.lower()) == (c.scheme, c.netloc.lower()) and c.path.rstrip("/").startswith(
        p.path.rstrip("/") + "/"
    )


async def prm_resource(flow: Flow) -> Verdict:
    assert flow.prm is not None
    resource, url = str(flow.prm["resource"]), flow.url
    if resource == url:
        flow.resource = resource
        return ok(f"resource = {resource} (exactly the URL)")
    if resource.rstrip("/") == url.rstrip("/"):
        seen = f"resource {resource} differs from {url} only by a trailing slash"
    elif _parent_of(resource, url):
        seen = f"resource {resource} is a parent of {url}"
    else:
        flow.missing["resource"] = "the client stops: the PRM names another resource (RFC 9728 §3.3)"
        return fail(
            f"resource {resource} is not {url}", f"set the PRM resource to exactly {url} (the URL clients are given)"
        )
    fix = f"set the PRM resource to exactly {url}, no trailing slash (RFC 9728 §3.3: identical)"
    if flow.profile.strict_resource:
        flow.missing["resource"] = f"the client stops: {seen} (RFC 9728 §3.3)"
        return fail(seen, fix)
    flow.resource = resource  # the SDKs accept it and send the PRM's form as `resource`
    return warn(f"{seen}; {flow.profile.label} accepts it and sends {resource} as resource", fix)


def as_metadata_candidates(issuer: str) -> list[str]:
    """MCP 2025-11-25 order: RFC 8414, then OIDC with path insertion, then OIDC appended."""
    parts = urlsplit(issuer)
    origin, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    if path:
        return [
            f"{origin}/.well-known/oauth-authorization-server{path}",
            f"{origin}/.well-known/openid-configuration{path}",
            f"{origin}{path}/.well-known/openid-configuration",
        ]
    return [f"{origin}/.well-known/oauth-authorization-server", f"{origin}/.well-known/openid-configuration"]


async def as_discovery(flow: Flow) -> Verdict:
    assert flow.as_url is not None
    if urlsplit(flow.as_url).scheme != "https" and not is_loopback(flow.as_url):
        flow.missing["as_candidate"] = "the authorization server is not on HTTPS"
        return fail(f"authorization server {flow.as_url} is not HTTPS", "serve the authorization server over HTTPS")
    tried = []
    for url in as_metadata_candidates(flow.as_url):
        response, body = await flow.wire.get_json(url, flow.discovery_headers())
        tried.append(f"{url} → {response.status_code}")
        if response.status_code == 200 and isinstance(body, dict):
            flow.as_candidate, flow.as_meta_url = body, url
            via = " (OIDC discovery)" if "openid-configuration" in url else ""
            return ok(f"metadata at {url}{via}")
        if response.status_code >= 500:
            break  # the SDK stops at a server error
    flow.missing["as_candidate"] = "no authorization server metadata was found"
    first = as_metadata_candidates(flow.as_url)[0]
    return fail(
        "no AS metadata: " + ", ".join(tried),
        f"serve RFC 8414 metadata at {first} (or OIDC discovery), or fix authorization_servers in the PRM",
    )


async def as_issuer(flow: Flow) -> Verdict:
    assert flow.as_candidate is not None and flow.as_url is not None
    issuer, expected = flow.as_candidate.get("issuer"), flow.as_url
    if issuer == expected:
        flow.as_meta = flow.as_candidate
        return ok(f"issuer = {issuer} (exact match)")
    fix = f"make the metadata's issuer exactly {expected}, the PRM's authorization_servers entry (RFC 8414 §3.3)"
    if isinstance(issuer, str) and issuer.rstrip("/") == expected.rstrip("/") and urlsplit(expected).path in ("", "/"):
        flow.as_meta = flow.as_candidate  # the SDKs treat a root issuer's slash as the same server
        return warn(f"issuer {issuer} differs from {expected} by a trailing slash", fix)
    flow.missing["as_meta"] = "the client refuses metadata whose issuer differs (RFC 8414 §3.3)"
    return fail(f"issuer {issuer!r} ≠ {expected!r}", fix)


async def as_metadata(flow: Flow) -> Verdict:
    meta = flow.as_meta or {}
    problems = [f"no {k}" for k in ("authorization_endpoint", "token_endpoint") if not isinstance(meta.get(k), str)]
    problems += [
        f"{k} is not HTTPS"
        for k in ("authorization_endpoint", "token_endpoint", "registration_endpoint")
        if isinstance(meta.get(k), str) and not meta[k].startswith("https://") and not is_loopback(meta[k])
    ]
    if "code" not in (meta.get("response_types_supported") or []):
        problems.append('response_types_supported lacks "code"')
    if problems:
        flow.as_meta, flow.missing["as_meta"] = None, "the AS metadata is unusable: " + "; ".join(problems)
        return fail("; ".join(problems), "fix the authorization server metadata (RFC 8414 §2)")
    extras = [
        k
        for k in (
            "registration_endpoint",
            "client_id_metadata_document_supported",
            "authorization_response_iss_parameter_supported",
        )
        if meta.get(k)
    ]
    return ok("endpoints present" + (f"; advertises {', '.join(extras)}" if extras else ""))


async def as_pkce(flow: Flow) -> Verdict:
    methods = flow.meta("code_challenge_methods_supported") or []
    if "S256" in methods:
        flow.pkce_ok = True
        return ok(f"code_challenge_methods_supported = {methods}")
    seen = f"code_challenge_methods_supported = {methods or '(absent)'}: S256 not advertised"
    fix = 'advertise code_challenge_methods_supported: ["S256"] (MCP 2025-11-25: clients MUST refuse otherwise)'
    if flow.profile.refuses_without_s256:
        flow.missing["pkce_ok"] = "the client refuses an authorization server that does not advertise S256"
        return fail(f"{seen}; {flow.profile.label} stops here", fix)
    flow.pkce_ok = True
    return warn(f"{seen}; {flow.profile.label} sends S256 anyway", fix)
