"""Drive the real `mcp` 2.3.0 client (`OAuthClientProvider` + `Client`, mode "auto") headlessly
against a deployment whose authorization endpoint redirects straight back (the fakes), and
record what it experienced."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult

from support.sdk_oauth import MemoryTokenStorage, public_client

FLOW_TIMEOUT = 30.0
REDIRECT_URI = "http://127.0.0.1:38972/callback"  # never listened on: the code is read from Location


@dataclass
class SdkOutcome:
    ok: bool
    error: str = ""
    tools: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def signed_in(self) -> bool:
        return any(path.endswith("/token") for _, path, _ in self.requests)


async def run_sdk_client(url: str) -> SdkOutcome:
    """Connect, list tools; never raises: the outcome says what happened."""
    answers: list[dict[str, str]] = []

    async def redirect_handler(authorization_url: str) -> None:
        async with httpx.AsyncClient(follow_redirects=False, timeout=10) as http:
            response = await http.get(authorization_url)
        answers.append(dict(parse_qsl(urlsplit(response.headers.get("location", "")).query)))

    async def callback_handler() -> AuthorizationCodeResult:
        answer = answers[-1]
        if "code" not in answer:
            raise RuntimeError(f"authorization failed: {answer}")
        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))

    provider = public_client(
        url, "doctor agreement check", REDIRECT_URI, MemoryTokenStorage(), redirect_handler, callback_handler
    )
    outcome = SdkOutcome(ok=False)

    async def record(response: httpx2.Response) -> None:
        outcome.requests.append((response.request.method, response.request.url.path, response.status_code))

    try:
        with anyio.fail_after(FLOW_TIMEOUT):
            async with httpx2.AsyncClient(
                auth=provider, timeout=httpx2.Timeout(10.0), event_hooks={"response": [record]}
            ) as http:
                async with Client(streamable_http_client(url, http_client=http), mode="auto") as client:
                    tools = await client.list_tools()
        outcome.ok, outcome.tools = True, [t.name for t in tools.tools]
    except Exception as exc:  # noqa: BLE001 - every failure is an outcome to compare
        outcome.error = "; ".join(f"{type(e).__name__}: {e}" for e in _leaves(exc))
        if outcome.requests:
            method, path, status = outcome.requests[-1]
            outcome.error += f" (last request: {method} {path} → {status})"
    return outcome


def _leaves(exc: BaseException) -> list[BaseException]:
    """The innermost exceptions of (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]
