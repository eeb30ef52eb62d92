"""`OutboundClient`: authgate's tokens for one OAuth-protected server, as one client.

It answers the server's challenges: a 401 finds the AS again (the PRM may have moved to
another AS: MCP 2026-07-28, SEP-2352) and refreshes or authorizes anew; a 403
`insufficient_scope` authorizes again with the union of the scopes asked so far and the
challenged ones (MCP authorization, "Scope Challenge Handling"), at most `max_step_ups` times
per request. Scopes: the challenge's `scope`, else the PRM's `scopes_supported`, else none;
`offline_access` added when the AS lists it (MCP 2026-07-28, SEP-2207). The browser leg is a
callable, so a connect page, a test or the conformance driver can each play it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from authgate.oauth.cimd.policy import CimdPolicy
from authgate.oauth.cimd.validating import fetch_url_problem
from authgate.outbound import authorization, registration
from authgate.outbound.challenge import Challenge, parse_challenge
from authgate.outbound.discovery import AuthServer, Discovery, discover
from authgate.outbound.errors import OutboundAuthError
from authgate.outbound.registration import ClientProfile, Credentials

if TYPE_CHECKING:
    from authgate.oauth.cimd.fetching import PinnedFetcher

Browser = Callable[[str], Awaitable[str]]
"""`(authorization URL) -> the URL the AS redirected back to` (the user's browser leg)."""


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    """How authgate acts as a client of one remote server."""

    server_url: str
    profile: ClientProfile
    preconfigured: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # issuer → (id, secret)
    allow_loopback_http: bool = False  # TESTING ONLY, as CimdPolicy's
    legacy_2025_03_26: bool = False  # a server without PRM: its origin is the AS
    max_step_ups: int = 2  # re-authorizations per request after the first token
    refresh_margin: float = 30.0  # refresh this many seconds before expiry
    timeout: float = 10.0  # per outbound HTTP exchange
    max_bytes: int = 65536


class OutboundClient:
    """One user's (or one test's) tokens for `settings.server_url`; `aclose()` when done."""

    def __init__(self, settings: OutboundSettings, browser: Browser, fetcher: PinnedFetcher | None = None) -> None:
        from authgate.oauth.cimd.fetching import PinnedFetcher, system_dns  # brings httpx

        self.settings = settings
        self._browser = browser
        self._policy = CimdPolicy(
            allow_loopback_http=settings.allow_loopback_http,
            timeout=settings.timeout,
            max_bytes=settings.max_bytes,
        )
        self._http = fetcher or PinnedFetcher(self._policy, system_dns, None)
        self._discovery: Discovery | None = None
        self._clients: dict[str, Credentials] = {}  # issuer → its client: never shown to another AS
        self._tokens: authorization.Tokens | None = None
        self._lock = asyncio.Lock()  # one discovery / authorization at a time: concurrent 401s share it
        self.authorizations = 0  # how many times the browser was sent (for tests and logs)

    # -- what the transport asks ---------------------------------------------------------------

    def bearer(self) -> str | None:
        return self._tokens.access_token if self._tokens else None

    async def fresh_bearer(self) -> str | None:
        """The token to send now, refreshed first when it is about to expire."""
        tokens = self._tokens
        if tokens and tokens.refresh_token and tokens.expires_at is not None:
            if tokens.expires_at - time.time() < self.settings.refresh_margin:
                await self._try_refresh()
        return self.bearer()

    async def on_unauthorized(self, www_authenticate: str | None, sent: str | None = None) -> str:
        """A 401 to a request that carried `sent`: a token obtained meanwhile by another request,
        else find the AS again, refresh when it is the same AS, else authorize."""
        async with self._lock:
            current = self.bearer()
            if current is not None and current != sent:
                return current
            return await self._unauthorized(parse_challenge(www_authenticate))

    async def _unauthorized(self, challenge: Challenge) -> str:
        old = self._discovery
        self._discovery = await self._discover(challenge)
        same_as = old is not None and old.auth_server.issuer == self._discovery.auth_server.issuer
        if same_as and self._tokens and self._tokens.refresh_token and await self._try_refresh():
            return self._tokens.access_token
        if not same_as:
            self._tokens = None
        return await self._authorize(self._scopes(challenge, ()))

    async def on_forbidden(self, www_authenticate: str | None) -> str | None:
        """A 403: a new token with the union of scopes for `insufficient_scope`, else None."""
        challenge = parse_challenge(www_authenticate)
        if challenge.error != "insufficient_scope":
            return None
        async with self._lock:
            if self._discovery is None:
                self._discovery = await self._discover(challenge)
            asked = self._tokens.scopes if self._tokens else ()
            return await self._authorize(self._scopes(challenge, asked))

    # -- the steps -----------------------------------------------------------------------------

    def _known(self) -> Discovery:
        if self._discovery is None:
            raise OutboundAuthError("no authorization server discovered yet")
        return self._discovery

    def _url_problem(self, url: str) -> str | None:
        return fetch_url_problem(url, self._policy)

    async def _get_json(self, url: str, what: str) -> Any:
        document, _ = await self._http.fetch(url, what=what)
        return document

    async def _post_form(self, url: str, form: dict[str, str], headers: dict[str, str], what: str) -> tuple[int, bytes]:
        status, _, body = await self._http.exchange("POST", url, what=what, form=form, headers=headers)
        return int(status), bytes(body)

    async def _post_json(self, url: str, body: dict[str, Any], what: str) -> tuple[int, bytes]:
        status, _, answer = await self._http.exchange("POST", url, what=what, json_body=body)
        return int(status), bytes(answer)

    async def _discover(self, challenge: Challenge) -> Discovery:
        return await discover(
            self.settings.server_url,
            challenge,
            self._get_json,
            self._url_problem,
            legacy=self.settings.legacy_2025_03_26,
        )

    def _scopes(self, challenge: Challenge, asked: tuple[str, ...]) -> tuple[str, ...]:
        discovery = self._known()
        wanted = challenge.scope or (() if asked else (discovery.scopes_supported or ()))
        union = tuple(dict.fromkeys((*asked, *wanted)))
        as_scopes = discovery.auth_server.scopes_supported or ()
        if union and "offline_access" in as_scopes and "offline_access" not in union:
            union = (*union, "offline_access")
        return union

    async def _client_for(self, server: AuthServer) -> Credentials:
        if server.issuer not in self._clients:
            configured = self.settings.preconfigured.get(server.issuer)
            if configured is not None:
                self._clients[server.issuer] = registration.preconfigured(server, *configured)
            else:
                self._clients[server.issuer] = await registration.obtain(server, self.settings.profile, self._post_json)
        return self._clients[server.issuer]

    async def _authorize(self, scopes: tuple[str, ...]) -> str:
        discovery = self._known()
        server = discovery.auth_server
        creds = await self._client_for(server)
        pending = authorization.begin(server, creds, self.settings.profile.redirect_uri, discovery.resource, scopes)
        self.authorizations += 1
        code = authorization.code_from(pending, await self._browser(pending.url))
        self._tokens = await authorization.redeem(server, creds, pending, code, self._post_form)
        return self._tokens.access_token

    async def _try_refresh(self) -> bool:
        if self._discovery is None or self._tokens is None or self._tokens.refresh_token is None:
            return False
        server = self._discovery.auth_server
        try:
            self._tokens = await authorization.refresh(
                server, self._clients[server.issuer], self._tokens, self._discovery.resource, self._post_form
            )
        except OutboundAuthError:
            self._tokens = None
            return False
        return True

    async def aclose(self) -> None:
        await self._http.aclose()
