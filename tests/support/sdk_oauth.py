"""Test helpers for driving the `mcp` SDK's OAuth client (on the test path: every test
directory imports them from here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken


class MemoryTokenStorage:
    """`mcp.client.auth.TokenStorage` in memory, optionally pre-seeded; records every
    registration the client stores."""

    def __init__(self, tokens: OAuthToken | None = None, client_info: OAuthClientInformationFull | None = None) -> None:
        self.tokens = tokens
        self.client_info = client_info
        self.client_info_writes: list[OAuthClientInformationFull] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
        self.client_info_writes.append(client_info)


def public_client(
    mcp_url: str,
    client_name: str,
    redirect_uri: str,
    storage: MemoryTokenStorage,
    redirect_handler: Callable[[str], Awaitable[None]],
    callback_handler: Callable[[], Awaitable[AuthorizationCodeResult]],
) -> OAuthClientProvider:
    """The SDK's OAuth client as a public client (no secret) that registers itself for the
    authorization code and refresh token grants, as ChatGPT and Claude do."""
    metadata = OAuthClientMetadata(
        client_name=client_name,
        redirect_uris=[redirect_uri],  # type: ignore[list-item]
        token_endpoint_auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
    )
    return OAuthClientProvider(
        mcp_url, metadata, storage, redirect_handler=redirect_handler, callback_handler=callback_handler
    )
