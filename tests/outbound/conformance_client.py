"""The conformance suite's client command, built on authgate's outbound OAuth client.

`conformance client --command "python tests/outbound/conformance_client.py" …` runs it with
the fake server's URL as the last argument and `MCP_CONFORMANCE_SCENARIO`,
`MCP_CONFORMANCE_CONTEXT` (JSON: a pre-registered client's id, secret and issuer) and
`MCP_CONFORMANCE_PROTOCOL_VERSION` in the environment. It connects with the mcp SDK's
Streamable HTTP transport, authgate's `OutboundAuth` doing the auth, and plays the browser
itself: it GETs the authorization URL through the same guarded fetcher and reads the fake
AS's 302 Location. Loopback is allowed here only (the suite's servers are http://localhost).
Exit status 0 when the tool call succeeded, 1 otherwise (some scenarios expect a refusal).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from authgate.errors import FetchError
from authgate.oauth.cimd.fetching import PinnedFetcher, system_dns
from authgate.oauth.cimd.policy import CimdPolicy
from authgate.outbound import OutboundAuthError, OutboundClient, OutboundSettings
from authgate.outbound.registration import ClientProfile
from authgate.outbound.sdk_auth import OutboundAuth

CIMD_URL = "https://conformance-test.local/client-metadata.json"  # what auth/basic-cimd expects
REDIRECT_URI = "http://localhost:3999/callback"  # never listened on: the driver reads the 302


def settings_from_env(server_url: str) -> OutboundSettings:
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION", "2025-11-25")
    preconfigured = {}
    if isinstance(context.get("client_id"), str) and isinstance(context.get("issuer"), str):
        preconfigured[context["issuer"]] = (context["client_id"], context.get("client_secret"))
    return OutboundSettings(
        server_url=server_url,
        profile=ClientProfile(redirect_uri=REDIRECT_URI, client_name="authgate-conformance", cimd_url=CIMD_URL),
        preconfigured=preconfigured,
        allow_loopback_http=True,
        legacy_2025_03_26=version == "2025-03-26",
    )


async def run(server_url: str) -> int:
    settings = settings_from_env(server_url)
    fetcher = PinnedFetcher(CimdPolicy(allow_loopback_http=True, timeout=10.0), system_dns, None)

    async def browser(url: str) -> str:
        status, headers, _ = await fetcher.exchange("GET", url, what="authorization request")
        location = headers.get("location")
        if status not in (302, 303) or not location:
            raise OutboundAuthError(f"the authorization endpoint answered {status} without a redirect")
        return str(location)

    client = OutboundClient(settings, browser, fetcher)
    version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION", "2025-11-25")
    mode = version if version in MODERN_PROTOCOL_VERSIONS else "legacy"
    try:
        async with httpx2.AsyncClient(auth=OutboundAuth(client), timeout=httpx2.Timeout(20.0)) as http:
            async with Client(streamable_http_client(server_url, http_client=http), mode=mode) as mcp:
                await mcp.list_tools()
                result = await mcp.call_tool("test-tool", {})
                print("tool result:", "error" if result.is_error else "ok", flush=True)
                return 1 if result.is_error else 0
    except (OutboundAuthError, FetchError) as exc:
        print(f"refused: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        await fetcher.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(run(sys.argv[-1])))
