"""Connections section: third-party providers whose tokens authgate obtains per user
(authgate.connections, docs/connections.md), and the bounds of the connect flow.

A provider is an OAuth API (its issuer, or its AS metadata URL) or an OAuth-protected MCP
server (its MCP URL: the AS is found through RFC 9728). authgate's client there is the one
configured (`client_id`), else its Client ID Metadata Document when the AS takes CIMD, else
Dynamic Client Registration (`registration` narrows the choice).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from authgate.config.issuers import issuer_problem
from authgate.config.policy import map_from_text
from authgate.config.problems import Refusal

FIXES: dict[str, str] = {
    "connection_tools": 'a map of tool name → provider name, e.g. {"create_issue": "github"} (at most 500)',
    "connection_providers": 'a map of name → {"issuer": "https://…", "scopes": ["…"]} (an OAuth API), '
    '{"metadata_url": "https://…/.well-known/oauth-authorization-server"} or {"kind": "mcp", "mcp_url": '
    '"https://…/mcp"}; names are 1-64 of a-z 0-9 _ -; see docs/connections.md',
}
MAX_PROVIDERS = 50
MAX_TOOLS = 500
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 §3.3 scope-token


def _url(value: str) -> str:
    if problem := issuer_problem(value):  # https (http on loopback only), no credentials
        raise ValueError(problem.replace("issuer ", "URL ", 1))
    return value


def _mcp_url(value: str) -> str:
    """An MCP URL may carry a query (an issuer may not); the rest as for an issuer."""
    base, _, _query = value.partition("?")
    _url(base)
    if "#" in value:
        raise ValueError("an MCP URL has no fragment")
    return value


Url = Annotated[str, Field(max_length=2048), AfterValidator(_url)]
McpUrl = Annotated[str, Field(max_length=2048), AfterValidator(_mcp_url)]


class ConnectionProvider(BaseModel):
    """One third-party provider (the key of `connection_providers` is its name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["oauth", "mcp"] = Field(
        "oauth", description="oauth: an OAuth-protected API; mcp: an OAuth-protected MCP server (RFC 9728)"
    )
    title: str | None = Field(None, max_length=100, description="the name the connect page shows (default: the key)")
    issuer: Url | None = Field(None, description="oauth: the AS's issuer (metadata found at its well-known URLs)")
    metadata_url: Url | None = Field(None, description="oauth: the AS metadata URL itself, instead of issuer")
    resource: Url | None = Field(None, description="oauth: the RFC 8707 resource to ask tokens for (optional)")
    mcp_url: McpUrl | None = Field(None, description="mcp: the remote MCP server's URL")
    client_id: str | None = Field(None, min_length=1, max_length=2048, description="authgate's client id there")
    client_secret: SecretStr | None = Field(None, description="its secret (none: a public client)")
    registration: Literal["auto", "configured", "cimd", "dcr"] = Field(
        "auto",
        description="auto: client_id if set, else CIMD where the AS takes it, else DCR; or only that one",
    )
    scopes: tuple[str, ...] = Field((), max_length=50, description="scopes asked for on every connect")
    token_exchange: bool = Field(
        False,
        description="try RFC 8693 token exchange first (only toward an AS listed as trusting authgate's issuer)",
    )

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if bad := [s for s in v if not _SCOPE.fullmatch(s)]:
            raise ValueError(f"scope {bad[0][:40]!r} is not an RFC 6749 scope token (1-128 printable, no space)")
        return v

    @model_validator(mode="after")
    def _where(self) -> ConnectionProvider:
        if self.kind == "oauth" and (self.issuer is None) == (self.metadata_url is None):
            raise ValueError("an oauth provider names exactly one of issuer and metadata_url")
        if self.kind == "oauth" and self.mcp_url is not None:
            raise ValueError("mcp_url is for kind = mcp")
        if self.kind == "mcp" and (self.mcp_url is None or self.issuer or self.metadata_url or self.resource):
            raise ValueError("an mcp provider names mcp_url only (its AS is found through RFC 9728)")
        if self.client_secret is not None and self.client_id is None:
            raise ValueError("client_secret needs client_id")
        if (self.registration == "configured") != (self.client_id is not None) and self.registration != "auto":
            raise ValueError('registration = "configured" needs client_id, and client_id needs it (or "auto")')
        return self


class ConnectionSettings(BaseModel):
    # -- connections (authgate.connections): per-user tokens for third-party OAuth APIs --
    connection_providers: dict[str, ConnectionProvider] = Field(
        default_factory=dict,
        description="third-party providers whose tokens tools use per user (docs/connections.md), "
        "keyed by name; each user connects once on authgate's connect page",
    )
    connection_link_ttl: int = Field(
        900, ge=60, le=86400, description="seconds a connect link (and its page's pending sign-in) stays valid"
    )
    connection_refresh_margin: int = Field(
        60, ge=0, le=86400, description="refresh a connection's access token this many seconds before it expires"
    )
    connection_tools: dict[str, str] = Field(
        default_factory=dict,
        description="HTTP gateway: tools that need a connection, tool name → provider (a key of "
        "connection_providers). The caller's token there goes to the upstream in X-Authgate-Connection-<provider> "
        "(a client's copy is always removed); not connected, the client is asked to connect first "
        "(docs/connections.md)",
    )
    outbound_allow_loopback_http: bool = Field(
        False,
        description="TESTING ONLY: let authgate's outbound OAuth client fetch http://127.0.0.1 / localhost "
        "(providers' metadata, token and registration endpoints)",
    )

    @field_validator("connection_providers", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        v = map_from_text(v)
        if isinstance(v, dict):
            if len(v) > MAX_PROVIDERS:
                raise ValueError(f"at most {MAX_PROVIDERS} providers")
            for name in v:
                if not NAME.fullmatch(str(name)):
                    raise ValueError(f"provider name {str(name)[:70]!r} is not 1-64 of a-z 0-9 _ - (first a-z 0-9)")
        return v

    @field_validator("connection_tools", mode="before")
    @classmethod
    def _tools(cls, v: Any) -> Any:
        v = map_from_text(v)
        if isinstance(v, dict):
            if len(v) > MAX_TOOLS:
                raise ValueError(f"at most {MAX_TOOLS} tools")
            for tool in v:
                if not 0 < len(str(tool)) <= 128:
                    raise ValueError(f"tool name {str(tool)[:70]!r} is not 1-128 characters")
        return v


def connection_refusals(s: ConnectionSettings, auth_mode: str) -> list[Refusal]:
    """Connections belong to authgate's users: embedded mode (they sign in on the connect page)
    or proxy mode (the connect page knows the person from their upstream sign-in in that
    browser); external mode keeps no users or store."""
    unknown = sorted({p for p in s.connection_tools.values() if p not in s.connection_providers})
    if unknown:
        return [
            Refusal(
                "connection_tools",
                f"names provider {unknown[0]!r}, which connection_providers does not declare",
                "declare it in connection_providers, or name one that is",
                depends=("connection_providers",),
            )
        ]
    if s.connection_providers and auth_mode == "external":
        return [
            Refusal(
                "connection_providers",
                "external mode keeps no users or store to hold connections in",
                'use auth_mode = "embedded" or "proxy", or remove connection_providers',
                depends=("auth_mode",),
            )
        ]
    return []
