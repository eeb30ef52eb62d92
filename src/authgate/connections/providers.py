"""What a provider is to the broker (`ProviderConfig`) and what a connection shows (`ConnectionInfo`).

Plain frozen values built from the settings (`providers_from`), so the core never reads
pydantic models and tests can build them by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from authgate.config.connections import ConnectionProvider

Kind = Literal["oauth", "mcp"]
Registration = Literal["auto", "configured", "cimd", "dcr"]


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One third-party provider. `kind` oauth: an OAuth API whose AS is `issuer` (metadata at
    its well-known URLs) or `metadata_url`; mcp: an OAuth-protected MCP server at `mcp_url`,
    its AS found through RFC 9728 (`authgate.outbound.discovery`)."""

    name: str
    kind: Kind = "oauth"
    title: str = ""
    issuer: str | None = None
    metadata_url: str | None = None
    resource: str | None = None  # RFC 8707, oauth kind; mcp kind: the PRM's `resource`
    mcp_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    registration: Registration = "auto"
    scopes: tuple[str, ...] = ()
    token_exchange: bool = False  # RFC 8693 first (authgate.outbound.exchange), where trusted

    @property
    def shown(self) -> str:
        """The name a person reads on the connect page."""
        return self.title or self.name

    def __repr__(self) -> str:  # never the secret
        secret = ", client_secret=<set>" if self.client_secret else ""
        return f"ProviderConfig(name={self.name!r}, kind={self.kind!r}{secret})"


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """A user's connection as listed (CLI, admin page, `broker.list`): never a token."""

    user_id: str
    provider: str
    issuer: str
    scopes: tuple[str, ...]
    expires_at: float | None  # the access token's; None: the provider gave no lifetime
    refreshable: bool  # a refresh token is held
    created_at: float
    updated_at: float


def providers_from(configured: Mapping[str, ConnectionProvider]) -> dict[str, ProviderConfig]:
    """The settings' `connection_providers` as core values."""
    return {
        name: ProviderConfig(
            name=name,
            kind=p.kind,
            title=p.title or "",
            issuer=p.issuer,
            metadata_url=p.metadata_url,
            resource=p.resource,
            mcp_url=p.mcp_url,
            client_id=p.client_id,
            client_secret=p.client_secret.get_secret_value() if p.client_secret else None,
            registration=p.registration,
            scopes=tuple(p.scopes),
            token_exchange=p.token_exchange,
        )
        for name, p in configured.items()
    }
