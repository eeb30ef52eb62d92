"""MCP requests with the token, with exactly the headers the client sends: the legacy
`initialize` handshake and `tools/list`, the 2026-07-28 `server/discover`, and the 401
semantics for a token the server must refuse."""

from __future__ import annotations

import secrets

from authgate.doctor import messages
from authgate.doctor.findings import Verdict, excerpt, fail, info, ok, warn
from authgate.doctor.flow import Flow
from authgate.doctor.wire import ACCEPT_MCP, RpcAnswer, bearer_challenge


def http_problem(flow: Flow, answer: RpcAnswer, method: str) -> Verdict | None:
    """A failing verdict for a non-200 answer to a request that carried the token."""
    if answer.status == 200:
        return None
    ch = bearer_challenge(answer.headers)
    if answer.status == 401:
        error = f"{ch.get('error') or ''}: {ch.get('error_description') or ''}" if ch else excerpt(answer.text, 120)
        return fail(
            f"{method} with the token → 401 ({error.strip(': ')})",
            f"the resource server refused the token: accept aud={flow.resource or flow.url} and "
            f"iss={flow.meta('issuer')} (and its signing keys)",
        )
    if answer.status == 403 and ch is not None and ch.get("error") == "insufficient_scope":
        return fail(
            f"{method} → 403 insufficient_scope (needs scope={ch.get('scope')!r})",
            "grant the scopes the challenge names, or list them in the PRM's scopes_supported",
        )
    if answer.status == 403:
        return fail(
            f"{method} → 403: {excerpt(answer.text)!r}",
            "allow this client's Origin, or use 401/insufficient_scope as the spec says",
        )
    if answer.status == 406:
        return fail(
            f"{method} → 406 for Accept: {ACCEPT_MCP}",
            "accept `Accept: application/json, text/event-stream` (Streamable HTTP) and answer with either",
        )
    if answer.status == 415:
        return fail(f"{method} → 415 for Content-Type: application/json", "accept Content-Type: application/json")
    return fail(f"{method} → {answer.status}: {excerpt(answer.text)!r}", "see the server's log for this request")


def _rpc_error(method: str, answer: RpcAnswer) -> Verdict:
    detail = answer.error or {"body": excerpt(answer.text)}
    return fail(f"{method} → 200 without a result: {detail}", "answer with a JSON-RPC result (JSON or SSE)")


def _browser_session_problem(flow: Flow, answer: RpcAnswer) -> str | None:
    """A browser client can read Mcp-Session-Id only when CORS exposes it."""
    origin = flow.profile.browser_origin
    if not origin:
        return None
    allowed = answer.headers.get("access-control-allow-origin")
    if allowed not in ("*", origin):
        return f"no Access-Control-Allow-Origin for {origin}"
    exposed = {h.strip().lower() for h in answer.headers.get("access-control-expose-headers", "").split(",")}
    if answer.headers.get("mcp-session-id") and "mcp-session-id" not in exposed and "*" not in exposed:
        return "Mcp-Session-Id is not exposed (Access-Control-Expose-Headers)"
    return None


async def mcp_initialize(flow: Flow) -> Verdict:
    message = messages.initialize(flow.profile)
    answer = await flow.wire.rpc(flow.url, message, messages.headers(flow.profile, message, token=flow.access_token))
    if (problem := http_problem(flow, answer, "initialize")) is not None:
        flow.missing["initialized"] = "initialize failed"
        return problem
    if answer.result is None:
        flow.missing["initialized"] = "initialize failed"
        return _rpc_error("initialize", answer)
    version = str(answer.result.get("protocolVersion"))
    flow.session_id = answer.headers.get("mcp-session-id")
    flow.negotiated_version, flow.initialized = version, True
    note = messages.initialized()
    sent = await flow.wire.rpc(
        flow.url,
        note,
        messages.headers(flow.profile, note, token=flow.access_token, version=version, session_id=flow.session_id),
    )
    server = (answer.result.get("serverInfo") or {}).get("name", "?")
    seen = f"initialize → protocolVersion {version}, server {server!r}, session {'yes' if flow.session_id else 'none'}"
    if browser := _browser_session_problem(flow, answer):
        return fail(f"{seen}; {browser}", "expose Mcp-Session-Id and allow this Origin on the MCP endpoint (CORS)")
    if sent.status not in (200, 202, 204):
        return warn(f"{seen}; notifications/initialized → {sent.status}", "answer 202 Accepted to notifications")
    return ok(seen)


async def mcp_tools_list(flow: Flow) -> Verdict:
    message = messages.legacy_request("tools/list")
    answer = await flow.wire.rpc(
        flow.url,
        message,
        messages.headers(
            flow.profile, message, token=flow.access_token, version=flow.negotiated_version, session_id=flow.session_id
        ),
    )
    if (problem := http_problem(flow, answer, "tools/list")) is not None:
        return problem
    tools = (answer.result or {}).get("tools")
    if not isinstance(tools, list):
        return _rpc_error("tools/list", answer)
    if flow.session_id:  # the client ends its session when it disconnects
        headers = messages.headers(
            flow.profile, {}, token=flow.access_token, version=flow.negotiated_version, session_id=flow.session_id
        )
        await flow.wire.request("DELETE", flow.url, headers=headers)
    names = ", ".join(str(t.get("name")) for t in tools[:6] if isinstance(t, dict))
    return ok(f"tools/list → {len(tools)} tool(s): {names}")


async def mcp_discover(flow: Flow) -> Verdict:
    """2026-07-28: `server/discover`, then `tools/list` statelessly."""
    message = messages.modern_request(flow.profile, "server/discover")
    answer = await flow.wire.rpc(flow.url, message, messages.headers(flow.profile, message, token=flow.access_token))
    versions = (answer.result or {}).get("supportedVersions") or []
    if answer.status in (401, 403) or answer.status >= 500:
        return http_problem(flow, answer, "server/discover") or _rpc_error("server/discover", answer)
    if answer.status != 200 or messages.MODERN_VERSION not in versions:
        why = (
            f"error {answer.error.get('code')} {answer.error.get('message', '')}".strip()
            if answer.error
            else f"HTTP {answer.status}"
            if answer.status != 200
            else f"supportedVersions={versions}"
        )
        return info(
            f"server/discover → {why}: the server speaks only the handshake era; "
            f"{flow.profile.label} falls back to initialize"
        )
    listing = messages.modern_request(flow.profile, "tools/list")
    answer = await flow.wire.rpc(flow.url, listing, messages.headers(flow.profile, listing, token=flow.access_token))
    if (problem := http_problem(flow, answer, "tools/list (2026-07-28)")) is not None:
        return problem
    tools = (answer.result or {}).get("tools")
    if not isinstance(tools, list):
        return _rpc_error("tools/list (2026-07-28)", answer)
    return ok(f"server/discover → {versions}; tools/list → {len(tools)} tool(s), stateless")


async def mcp_invalid_token(flow: Flow) -> Verdict:
    """A token the server cannot know (as after a server reset) must get 401 invalid_token."""
    message = messages.first_message(flow.profile)
    stale = "stale-" + secrets.token_urlsafe(24)
    answer = await flow.wire.rpc(flow.url, message, messages.headers(flow.profile, message, token=stale))
    ch = bearer_challenge(answer.headers)
    if answer.status == 401 and ch is not None and ch.get("error") == "invalid_token":
        return ok('an unknown token → 401 error="invalid_token"')
    if answer.status == 401:
        return warn(
            'an unknown token → 401 without error="invalid_token"',
            'add error="invalid_token" to the challenge (RFC 6750 §3.1): clients refresh or re-authorize on it',
        )
    if answer.status == 200:
        return fail(
            "an unknown token → 200: the server does not verify tokens",
            "verify every bearer token (signature, exp, aud) before serving MCP",
        )
    return fail(
        f"an unknown token → {answer.status}",
        'answer 401 with error="invalid_token" (RFC 6750 §3.1); 403 is only for insufficient_scope',
    )
