"""A provider's authorization server as the broker sees it: where it is, and authgate's client there.

Where: an oauth provider's `issuer` (its metadata at the spec's well-known URLs, issuer checked
byte for byte: RFC 8414 §3.3) or `metadata_url`; an mcp provider's AS through RFC 9728
(`authgate.outbound.discovery.discover`), starting from the `resource_metadata` of its 401 to a
request without credentials. Kept for `DISCOVERY_SECONDS` in this process.

authgate's client: the configured one, else the registration stored for that issuer (made by
this replica or another, before a restart or after), else a new one (CIMD where the AS takes it
and authgate has a document URL, else DCR: `authgate.outbound.registration.obtain`), stored with
its secret sealed. Two replicas registering at once keep the first stored; a registration made
for another redirect URI (public_url changed) is replaced. Every URL through the SSRF guard.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from authgate.connections.providers import ProviderConfig
from authgate.errors import FetchError
from authgate.oauth.cimd.policy import CimdPolicy
from authgate.oauth.cimd.validating import fetch_url_problem
from authgate.oauth.sealing import derive_key, seal, unseal
from authgate.outbound import registration
from authgate.outbound.challenge import Challenge, parse_challenge
from authgate.outbound.discovery import AuthServer, as_metadata_urls, auth_server_from, discover
from authgate.outbound.errors import OutboundAuthError
from authgate.outbound.registration import ClientProfile, Credentials
from authgate.store.models import RemoteClient
from authgate.store.protocols import ConnectionStore

if TYPE_CHECKING:
    from authgate.oauth.cimd.fetching import PinnedFetcher

DISCOVERY_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A provider's AS, and what to ask it for."""

    server: AuthServer
    resource: str | None  # RFC 8707 `resource` in both requests
    scopes_supported: tuple[str, ...] = ()  # the PRM's (mcp kind)


class RemoteServers:
    def __init__(
        self,
        store: ConnectionStore,
        secret: bytes,
        profile: ClientProfile,
        *,
        allow_loopback_http: bool = False,
        timeout: float = 10.0,
        fetcher: PinnedFetcher | None = None,
        clock: Any = time.time,
    ) -> None:
        self.store = store
        self.profile = profile
        self.clock = clock
        self.policy = CimdPolicy(allow_loopback_http=allow_loopback_http, timeout=timeout)
        self._http = fetcher  # made on first use: a gateway that never calls a provider never loads httpx
        self._key = derive_key(secret, "remote-clients")
        self._endpoints: dict[str, tuple[float, Endpoint]] = {}
        self._clients: dict[str, Credentials] = {}  # issuer → client, as stored

    # -- where ---------------------------------------------------------------------------------
    async def endpoint(self, provider: ProviderConfig) -> Endpoint:
        cached = self._endpoints.get(provider.name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = await self._discover(provider)
        self._endpoints[provider.name] = (time.monotonic() + DISCOVERY_SECONDS, found)
        return found

    async def _challenge(self, mcp_url: str) -> Challenge:
        """The MCP server's Bearer challenge to a request without credentials: its
        `resource_metadata` is where the spec has a client look first (RFC 9728 §5.1; MCP
        authorization, "Protected Resource Metadata Discovery"), before the well-known URLs."""
        headers = {"Accept": "application/json, text/event-stream"}
        try:
            status, answer, _ = await self.http.exchange(
                "POST", mcp_url, what="MCP server", json_body={}, headers=headers
            )
        except FetchError:
            return Challenge()  # discovery names what fails when it fetches the well-known URLs
        return parse_challenge(answer.get_list("www-authenticate")) if status == 401 else Challenge()

    def forget(self, provider: ProviderConfig) -> None:
        """Discover again next time (the AS refused what it advertised)."""
        self._endpoints.pop(provider.name, None)

    async def _discover(self, provider: ProviderConfig) -> Endpoint:
        if provider.kind == "mcp" and provider.mcp_url:
            challenge = await self._challenge(provider.mcp_url)
            found = await discover(provider.mcp_url, challenge, self.get_json, self.url_problem)
            return Endpoint(found.auth_server, found.resource, found.scopes_supported or ())
        if provider.metadata_url:
            document = await self.get_json(provider.metadata_url, "AS metadata")
            issuer = document.get("issuer") if isinstance(document, dict) else None
            if not isinstance(issuer, str) or self.url_problem(issuer):
                raise OutboundAuthError(f"AS metadata {provider.metadata_url[:200]} names no usable issuer")
            return Endpoint(auth_server_from(document, issuer, self.url_problem), provider.resource)
        issuer = provider.issuer or ""
        for url in as_metadata_urls(issuer):
            try:
                document = await self.get_json(url, "AS metadata")
            except FetchError:
                continue
            return Endpoint(auth_server_from(document, issuer, self.url_problem), provider.resource)
        raise OutboundAuthError(f"authorization server {issuer[:200]} of {provider.name} publishes no metadata")

    # -- who -----------------------------------------------------------------------------------
    async def credentials(self, provider: ProviderConfig, server: AuthServer) -> Credentials:
        if provider.client_id is not None:
            return registration.preconfigured(server, provider.client_id, provider.client_secret)
        known = self._clients.get(server.issuer)
        if known is not None:
            return known
        stored = await self.store.get_remote_client(server.issuer)
        if stored is None or stored.redirect_uri != self.profile.redirect_uri:
            stored = await self._register(provider, server, replace_old=stored is not None)
        creds = Credentials(stored.client_id, self._open(stored), stored.auth_method)
        self._clients[server.issuer] = creds
        return creds

    def registration_refused(self, issuer: str) -> None:
        """The AS no longer knows authgate's client (invalid_client): register anew next time."""
        self._clients.pop(issuer, None)

    async def _register(self, provider: ProviderConfig, server: AuthServer, *, replace_old: bool) -> RemoteClient:
        profile = self.profile
        if provider.registration == "dcr":
            profile = replace(profile, cimd_url=None)
        elif provider.registration == "cimd" and not (server.cimd_supported and profile.cimd_url):
            raise OutboundAuthError(
                f"{provider.name}: registration = cimd, but the AS does not take CIMD or authgate has no "
                "HTTPS document URL"
            )
        creds = await registration.obtain(server, profile, self.post_json)
        how = "cimd" if creds.client_id == profile.cimd_url else "dcr"
        record = RemoteClient(
            issuer=server.issuer,
            client_id=creds.client_id,
            sealed_secret=seal(self._key, creds.client_secret.encode(), server.issuer.encode())
            if creds.client_secret is not None
            else None,
            auth_method=creds.auth_method,
            how=how,
            redirect_uri=profile.redirect_uri,
            registered_at=self.clock(),
        )
        return await self.store.add_remote_client(record, replace=replace_old)

    def _open(self, record: RemoteClient) -> str | None:
        if record.sealed_secret is None:
            return None
        return unseal(self._key, record.sealed_secret, record.issuer.encode()).decode()

    # -- the guarded HTTP ----------------------------------------------------------------------
    @property
    def http(self) -> PinnedFetcher:
        if self._http is None:
            from authgate.oauth.cimd.fetching import PinnedFetcher, system_dns  # brings httpx

            self._http = PinnedFetcher(self.policy, system_dns, None)
        return self._http

    def url_problem(self, url: str) -> str | None:
        return fetch_url_problem(url, self.policy)

    async def get_json(self, url: str, what: str) -> Any:
        document, _ = await self.http.fetch(url, what=what)
        return document

    async def post_form(self, url: str, form: dict[str, str], headers: dict[str, str], what: str) -> tuple[int, bytes]:
        try:
            status, _, body = await self.http.exchange("POST", url, what=what, form=form, headers=headers)
        except FetchError as exc:
            raise OutboundAuthError(f"{what}: {str(exc)[:300]}") from None
        return int(status), bytes(body)

    async def post_json(self, url: str, body: dict[str, Any], what: str) -> tuple[int, bytes]:
        try:
            status, _, answer = await self.http.exchange("POST", url, what=what, json_body=body)
        except FetchError as exc:
            raise OutboundAuthError(f"{what}: {str(exc)[:300]}") from None
        return int(status), bytes(answer)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
