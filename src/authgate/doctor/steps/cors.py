"""CORS, for clients that run in a browser (the Inspector in direct mode): a blocked preflight
or an unexposed header fails the client before the server sees a real request.

Fetch standard: `Access-Control-Allow-Headers: *` does not cover `Authorization`, and a
response header the page must read (`WWW-Authenticate`, `Mcp-Session-Id`) must be listed in
`Access-Control-Expose-Headers`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from authgate.doctor.findings import Verdict, fail, ok, skip
from authgate.doctor.flow import Flow

MCP_REQUEST_HEADERS = ("authorization", "content-type", "mcp-protocol-version", "mcp-session-id")


def _listed(value: str | None) -> set[str]:
    return {h.strip().lower() for h in (value or "").split(",") if h.strip()}


def _origin_allowed(headers: httpx.Headers, origin: str) -> bool:
    return headers.get("access-control-allow-origin") in ("*", origin)


async def preflight(flow: Flow, url: str, method: str, request_headers: tuple[str, ...]) -> list[str]:
    """Send the browser's OPTIONS preflight; return what would make the browser block."""
    origin = flow.profile.browser_origin or ""
    response = await flow.wire.request(
        "OPTIONS",
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ", ".join(request_headers),
        },
    )
    path = urlsplit(url).path
    if not 200 <= response.status_code < 300:
        return [f"preflight OPTIONS {path} → {response.status_code}"]
    problems = []
    if not _origin_allowed(response.headers, origin):
        problems.append(f"preflight {path}: no Access-Control-Allow-Origin for {origin}")
    methods = _listed(response.headers.get("access-control-allow-methods"))
    if method.lower() not in methods and "*" not in methods:
        problems.append(f"preflight {path}: {method} not in Access-Control-Allow-Methods")
    allowed = _listed(response.headers.get("access-control-allow-headers"))
    lacking = [h for h in request_headers if h not in allowed and not ("*" in allowed and h != "authorization")]
    if lacking:
        problems.append(f"preflight {path}: Access-Control-Allow-Headers lacks {', '.join(lacking)}")
    return problems


async def cors_mcp(flow: Flow) -> Verdict:
    origin = flow.profile.browser_origin or ""
    wanted = MCP_REQUEST_HEADERS + (("mcp-method",) if flow.profile.modern else ())
    problems = await preflight(flow, flow.url, "POST", wanted)
    seen = flow.challenge_headers
    if seen is not None and not _origin_allowed(seen, origin):
        problems.append("the 401 carries no Access-Control-Allow-Origin")
    elif seen is not None and "www-authenticate" not in _listed(seen.get("access-control-expose-headers")):
        problems.append("the 401 does not expose WWW-Authenticate (Access-Control-Expose-Headers)")
    if problems:
        return fail(
            "; ".join(problems),
            f"enable CORS on {urlsplit(flow.url).path} for {origin}: allow "
            f"{', '.join(wanted)}; expose WWW-Authenticate and Mcp-Session-Id",
        )
    return ok(f"preflight from {origin} allowed; the 401 exposes WWW-Authenticate")


async def cors_discovery(flow: Flow) -> Verdict:
    origin = flow.profile.browser_origin or ""
    problems: list[str] = []
    for url in (flow.prm_url, flow.as_meta_url):
        if url is None:
            continue
        if flow.profile.discovery_header:  # a custom header makes even a GET preflighted
            problems += await preflight(flow, url, "GET", ("mcp-protocol-version",))
        response = await flow.wire.request("GET", url, headers=flow.discovery_headers())
        if not _origin_allowed(response.headers, origin):
            problems.append(f"GET {urlsplit(url).path}: no Access-Control-Allow-Origin")
    if problems:
        return fail(
            "; ".join(problems),
            "serve the well-known documents with Access-Control-Allow-Origin: * "
            "and allow the MCP-Protocol-Version request header",
        )
    return ok("the PRM and AS metadata are readable from a browser")


async def cors_oauth(flow: Flow) -> Verdict:
    origin = flow.profile.browser_origin or ""
    problems: list[str] = []
    checked = []
    endpoint = flow.meta("registration_endpoint")
    if flow.client is not None and flow.client.via == "dcr" and isinstance(endpoint, str):
        problems += await preflight(flow, endpoint, "POST", ("content-type",))
        checked.append("register (preflight)")
    for name, headers in flow.cors_seen.items():
        checked.append(name)
        if not _origin_allowed(headers, origin):
            problems.append(f"the {name} response carries no Access-Control-Allow-Origin")
    if problems:
        return fail(
            "; ".join(problems),
            "allow cross-origin requests on /register and /token (Access-Control-Allow-Origin, Content-Type allowed)",
        )
    if not checked:
        return skip("nothing to check: no registration or token request was made")
    return ok(f"{', '.join(dict.fromkeys(checked))} reachable from {origin}")
