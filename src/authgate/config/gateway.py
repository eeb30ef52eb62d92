"""Gateway section: the upstream MCP server behind the guard (authgate.gateway), HTTP or stdio."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from authgate.config.problems import Refusal
from authgate.masking import masked_url

# Headers the gateway or the client own: an operator's static header must not replace them.
_GATEWAY_OWNED = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "upgrade",
    "trailer",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
}

# Names upstream_token_header may not take: the gateway's own, auth, cookies, forwarding, the
# content headers it relays, trace context, and the identity headers (gateway/headers.py).
_TOKEN_HEADER_TAKEN = _GATEWAY_OWNED | {
    "authorization",
    "cookie",
    "set-cookie",
    "origin",
    "forwarded",
    "x-real-ip",
    "accept",
    "accept-encoding",
    "content-type",
    "content-encoding",
    "last-event-id",
    "expect",
    "traceparent",
    "tracestate",
    "www-authenticate",
    "x-authgate-subject",
    "x-authgate-client-id",
    "x-authgate-scopes",
    "x-authgate-username",
}

FIXES: dict[str, str] = {
    "upstream": "set it to the Streamable HTTP URL of the MCP server to protect, e.g. "
    "http://127.0.0.1:9000/mcp, or leave it unset to serve the built-in server",
    "upstream_headers": 'give header names and values, e.g. {"X-Api-Key": "..."} (on the command line: '
    "that JSON object or one 'Name: value'); never Host, Mcp-*, X-Authgate-* or hop-by-hop headers",
    "upstream_bearer_token": "keep either upstream_bearer_token or an Authorization entry in upstream_headers",
    "upstream_token_header": "give one header name for the upstream to read, e.g. X-Authgate-Upstream-Token "
    "(its X-Authgate- prefix keeps client copies out even when the setting is off); never Authorization, "
    "Cookie, Host, hop-by-hop, Forwarded/X-Forwarded-*, Mcp-*, traceparent or a header authgate already sets",
    "upstream_oauth": "keep one credential for the upstream: remove upstream_bearer_token (or the Authorization "
    'entry of upstream_headers), or set upstream_oauth = "off"',
    "upstream_command": "give the program and its arguments, e.g. ['npx','-y','@modelcontextprotocol/"
    "server-everything'] (on the command line: `authgate serve -- CMD ARGS…`), and unset upstream",
}


class GatewaySettings(BaseModel):
    # -- gateway: an upstream MCP server behind the guard (authgate.gateway) --------------
    upstream: str | None = Field(
        None,
        description="Streamable HTTP URL of the MCP server to protect, e.g. http://127.0.0.1:9000/mcp; "
        "default: the built-in server",
    )
    upstream_connect_timeout: float = Field(
        5.0, gt=0, le=300, description="seconds to open a connection to the upstream"
    )
    upstream_first_byte_timeout: float = Field(
        300.0,
        gt=0,
        le=86400,
        description="seconds the upstream may take to start answering a request (a long tool answering "
        "in JSON counts here); past it the client gets 504",
    )
    upstream_idle_timeout: float = Field(
        300.0,
        gt=0,
        le=86400,
        description="seconds a streaming (SSE) answer may stay silent before the gateway ends it",
    )
    upstream_call_timeout: float = Field(
        600.0,
        gt=0,
        le=86400,
        description="seconds one request's answer may take in total, JSON or SSE, HTTP or stdio upstream; "
        "past it the client gets a JSON-RPC error (504, or a last SSE event) and the upstream "
        "notifications/cancelled",
    )
    upstream_stream_timeout: float = Field(
        3600.0,
        gt=0,
        le=86400,
        description="seconds a standalone GET SSE stream (or subscriptions/listen) may stay open before the "
        "gateway ends it cleanly, so that the client reconnects",
    )
    upstream_headers: dict[str, str] = Field(
        default_factory=dict,
        description='static headers sent upstream, e.g. an API key: {"X-Api-Key": "..."} '
        "(on the command line: a JSON object or one 'Name: value')",
    )
    upstream_bearer_token: SecretStr | None = Field(
        None, description="sent upstream as `Authorization: Bearer …` (the client's own token never is)"
    )
    upstream_oauth: Literal["auto", "on", "off"] = Field(
        "auto",
        description="an OAuth-protected upstream (it answers 401 with RFC 9728 protected resource metadata): each "
        "person connects their own account there through authgate's connect page and the gateway sends that "
        "person's token (docs/protected-upstream.md); auto = when a probe at start (or the first answer to a "
        "request sent without credentials) is a 401 with a Bearer challenge, on = always, off = never (a 401 "
        "is then authgate's credential refused). Needs authgate's store (not external mode) and no static "
        "Authorization (upstream_bearer_token)",
    )
    upstream_token_header: str | None = Field(
        None,
        max_length=64,
        description="proxy mode with an HTTP upstream: send the caller's own access token at the upstream IdP "
        "(renewed when near expiry) to the upstream in this header, e.g. X-Authgate-Upstream-Token; never the "
        "token the client presented. A client's header of that name is always removed. Default: off",
    )
    upstream_command: list[str] | None = Field(
        None,
        description="a stdio MCP server to run and protect, e.g. "
        "['npx','-y','@modelcontextprotocol/server-everything'] (on the command line: "
        '`--upstream-command "CMD ARGS…"`, split like a shell, or `authgate serve -- CMD ARGS…`); '
        "one process per session / caller",
    )
    upstream_stdio_protocol: Literal["auto", "2025-11-25"] = Field(
        "auto",
        description="the MCP version a stdio upstream's processes are spoken to at for 2026-07-28 clients: "
        "auto = 2026-07-28 when the command's server/discover lists it (its own InputRequiredResults, "
        "requestState and subscriptions/listen streams pass through), else 2025-11-25; 2025-11-25 = always, "
        "the bridge turning the server's requests to the client (elicitation, sampling, roots) into "
        "InputRequiredResults (for a server that claims 2026-07-28 but still sends them)",
    )
    upstream_stdio_spares: int = Field(
        1,
        ge=0,
        le=4,
        description="processes of the stdio upstream started ahead for each caller (after its first), so "
        "that its next session or process does not wait for the command's start-up; 0 = none. A spare "
        "counts toward the bridge's process limit (stopped first when room is needed), not toward the "
        "per-caller one, and is stopped like any idle process",
    )
    max_streams_per_caller: int = Field(
        8,
        ge=1,
        le=10000,
        description="long-lived streams (GET streams, subscriptions/listen) one caller (token subject and "
        "client, or address when anonymous) may hold open at once on this replica; past it: 429",
    )
    identity_headers: bool = Field(
        False,
        description="tell the upstream who is calling in X-Authgate-Subject, X-Authgate-Client-Id, "
        "X-Authgate-Scopes and X-Authgate-Username (copies sent by clients are always removed)",
    )

    @field_validator("upstream")
    @classmethod
    def _gateway_upstream_is_http_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"'{masked_url(v)}' is not an http:// or https:// URL of a Streamable HTTP MCP endpoint")
        if parts.username or parts.password or parts.fragment:
            raise ValueError(
                "the URL carries credentials or a #fragment; send credentials with "
                "upstream_bearer_token or upstream_headers"
            )
        return v

    @field_validator("upstream_token_header")
    @classmethod
    def _gateway_token_header_is_free(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", v):  # RFC 9110 §5.6.2 token
            raise ValueError(f"{v!r} is not a valid HTTP header name")
        lower = v.lower()
        if lower in _TOKEN_HEADER_TAKEN or lower.startswith(("mcp-", "x-forwarded-", "proxy-")):
            raise ValueError(
                f"{v} is a header authgate, the client or a proxy sets (auth, hop-by-hop, forwarding, MCP); "
                "choose another name, e.g. X-Authgate-Upstream-Token"
            )
        return v

    @field_validator("upstream_command")
    @classmethod
    def _gateway_command_is_given(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or not v[0].strip()):
            raise ValueError("the command is empty; give the program and its arguments")
        return v

    @field_validator("upstream_headers", mode="before")
    @classmethod
    def _gateway_headers_from_text(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        text = v.strip()
        if text.startswith("{"):
            return json.loads(text)  # a ValueError names the JSON problem
        name, colon, value = text.partition(":")
        if not colon:
            raise ValueError("expected a JSON object or one 'Name: value'")
        return {name.strip(): value.strip()}

    @field_validator("upstream_headers")
    @classmethod
    def _gateway_headers_are_sendable(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):  # RFC 9110 §5.6.2 token
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if name.lower() in _GATEWAY_OWNED or name.lower().startswith(("x-authgate-", "mcp-param-")):
                raise ValueError(f"{name} is set by the gateway itself or by the client; remove it")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"the value of {name} contains a line break or NUL")
        return v


def gateway_refusals(s: GatewaySettings, public_url: str, auth_mode: str = "embedded") -> list[Refusal]:
    """Rules across settings: one upstream, not authgate itself, one Authorization header, the
    upstream IdP token only where there is one (proxy mode) and an HTTP upstream to send it to."""
    found = []
    if s.upstream_token_header is not None:
        found += _token_header_refusals(s, auth_mode)
    if s.upstream_oauth == "on":
        found += _oauth_refusals(s, auth_mode)
    if s.upstream is not None and s.upstream.rstrip("/") == public_url + "/mcp":
        found.append(
            Refusal(
                "upstream",
                f"'{masked_url(s.upstream)}' is authgate's own MCP endpoint; name the server to protect",
                depends=("public_url", "port", "host"),
            )
        )
    if s.upstream_command is not None and s.upstream:
        found.append(
            Refusal(
                "upstream_command",
                "upstream is set too; protect either an HTTP upstream or a stdio command",
                depends=("upstream",),
            )
        )
    if s.upstream_bearer_token is not None and any(n.lower() == "authorization" for n in s.upstream_headers):
        found.append(
            Refusal(
                "upstream_bearer_token",
                "upstream_headers already sets Authorization; keep one of the two",
                depends=("upstream_headers",),
            )
        )
    return found


def _token_header_refusals(s: GatewaySettings, auth_mode: str) -> list[Refusal]:
    name = s.upstream_token_header or ""
    if auth_mode != "proxy":
        problem = f'needs auth_mode = "proxy" (authgate holds upstream IdP tokens only there; it is {auth_mode!r})'
        fix = 'set auth_mode = "proxy" (people sign in at an IdP, docs/idp/proxy.md), or remove upstream_token_header'
        return [Refusal("upstream_token_header", problem, fix, depends=("auth_mode",))]
    if s.upstream is None:
        problem = "needs an HTTP upstream (upstream) to send the header to"
        fix = "set upstream, or remove upstream_token_header (library-mode tools call authgate.upstream_token(ctx))"
        return [Refusal("upstream_token_header", problem, fix, depends=("upstream", "upstream_command"))]
    if any(n.lower() == name.lower() for n in s.upstream_headers):
        problem = f"upstream_headers already sets {name}"
        return [Refusal("upstream_token_header", problem, "choose another name", depends=("upstream_headers",))]
    return []


def upstream_oauth_mode(s: GatewaySettings, auth_mode: str) -> Literal["auto", "on", "off"]:
    """`upstream_oauth` as it applies: off without an HTTP upstream, with the operator's own
    credential for it, or in external mode (no store to keep people's connections in)."""
    if s.upstream is None or auth_mode == "external" or has_static_authorization(s):
        return "off"
    return s.upstream_oauth


def wants_connections(s: GatewaySettings, providers: Mapping[str, Any], auth_mode: str) -> bool:
    """A connection broker and the connect page (server/app.py): providers configured, or an
    upstream that may be OAuth-protected; never in external mode (no store to keep them in)."""
    return auth_mode != "external" and (bool(providers) or upstream_oauth_mode(s, auth_mode) != "off")


def upstream_provider_refusals(s: GatewaySettings, providers: Mapping[str, Any], auth_mode: str) -> list[Refusal]:
    """`connection_providers.upstream` is the protected upstream's name: only an mcp provider
    naming this upstream (its client configured there) may take it."""
    mine = providers.get("upstream")
    if mine is None or upstream_oauth_mode(s, auth_mode) == "off":
        return []
    if getattr(mine, "kind", None) == "mcp" and getattr(mine, "mcp_url", None) == s.upstream:
        return []
    problem = "the provider name 'upstream' is the protected upstream's (upstream_oauth), and this one is not it"
    fix = 'rename it, or make it {"kind": "mcp", "mcp_url": "<the upstream URL>"} to configure the upstream\'s client'
    return [Refusal("connection_providers", problem, fix, depends=("upstream", "upstream_oauth"))]


def has_static_authorization(s: GatewaySettings) -> bool:
    """Does the operator give the upstream a credential of their own (then never per-person tokens)?"""
    return s.upstream_bearer_token is not None or any(n.lower() == "authorization" for n in s.upstream_headers)


def _oauth_refusals(s: GatewaySettings, auth_mode: str) -> list[Refusal]:
    """`upstream_oauth = "on"`: per-person tokens need an HTTP upstream, authgate's store, and no
    static Authorization beside them (docs/protected-upstream.md)."""
    if s.upstream is None:
        problem = "needs an HTTP upstream (upstream) to send each person's token to"
        fix = 'set upstream, or set upstream_oauth = "auto"'
        return [Refusal("upstream_oauth", problem, fix, depends=("upstream", "upstream_command"))]
    if auth_mode == "external":
        problem = "needs authgate's store for each person's connection, which external mode does not open"
        fix = 'use auth_mode = "embedded" or "proxy", or set upstream_oauth = "off"'
        return [Refusal("upstream_oauth", problem, fix, depends=("auth_mode",))]
    if has_static_authorization(s):
        problem = "upstream_bearer_token (or an Authorization entry of upstream_headers) is set too"
        return [Refusal("upstream_oauth", problem, depends=("upstream_bearer_token", "upstream_headers"))]
    return []
