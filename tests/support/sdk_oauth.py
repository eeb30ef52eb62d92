"""Test helpers for driving the `mcp` SDK's OAuth client (on the test path: every test
directory imports them from here)."""

from __future__ import annotations

from mcp.shared.auth import OAuthClientInformationFull, OAuthToken


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
