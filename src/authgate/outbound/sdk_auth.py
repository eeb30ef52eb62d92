"""`OutboundAuth`: an `OutboundClient` as the mcp SDK's HTTP auth (its httpx2 `Auth` hook).

The SDK's Streamable HTTP transport takes an httpx2 client; this hook puts the bearer on each
request, answers a 401 once (discover, refresh or authorize, send again) and a 403
`insufficient_scope` up to `max_step_ups` times per request, then hands the last answer back.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx2

from authgate.outbound.client import OutboundClient


class OutboundAuth(httpx2.Auth):
    def __init__(self, client: OutboundClient) -> None:
        self.client = client

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        sent = await self.client.fresh_bearer()
        if sent:
            request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code == 401:
            token = await self.client.on_unauthorized(response.headers.get("www-authenticate"), sent)
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
        for _ in range(self.client.settings.max_step_ups):
            if response.status_code != 403:
                return
            stepped = await self.client.on_forbidden(response.headers.get("www-authenticate"))
            if stepped is None:
                return
            request.headers["Authorization"] = f"Bearer {stepped}"
            response = yield request
