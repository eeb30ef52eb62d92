"""Discovery documents, JWKS and health checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate.config.settings import Settings
from authgate.guard.prm import protected_resource_metadata
from authgate.oauth.authority import Authority
from authgate.oauth.metadata import authorization_server_metadata
from authgate.outbound.client_document import client_document
from authgate.server.routes.attempt_steps import metadata as metadata_step

_PUBLIC = {"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"}
# an AS caches a CIMD document by its HTTP caching headers (CIMD draft): it changes only with public_url
_CLIENT_DOCUMENT = {"Cache-Control": "public, max-age=3600"}


class Discovery:
    def __init__(
        self,
        auth: Authority,
        settings: Settings,
        upstream_ready: Callable[[], Awaitable[tuple[bool, str]]] | None = None,
    ) -> None:
        self.auth = auth
        self.upstream_ready = upstream_ready  # the gateway's upstream, when there is one
        self._as = authorization_server_metadata(auth.config)
        self._prm = protected_resource_metadata(settings)  # the policy's scope map too
        self._client_document = client_document(settings.urls.base)  # None on plain http: not routed

    async def as_metadata(self, request: Request) -> Response:
        metadata_step(self.auth, request)  # in this process only: no write (oauth/attempts.py)
        return JSONResponse(self._as, headers=_PUBLIC)

    async def prm(self, request: Request) -> Response:
        metadata_step(self.auth, request)
        return JSONResponse(self._prm, headers=_PUBLIC)

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.auth.keys.jwks(), headers=_PUBLIC)

    async def client_metadata(self, request: Request) -> Response:
        """authgate's Client ID Metadata Document, for the ASes of its connections."""
        if self._client_document is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(self._client_document, headers=_CLIENT_DOCUMENT)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        try:
            await self.auth.store.count_users()
        except Exception as exc:  # noqa: BLE001 - readiness reports any store failure
            return JSONResponse({"status": "unavailable", "store": type(exc).__name__}, status_code=503)
        if self.upstream_ready is not None:
            ok, detail = await self.upstream_ready()
            if not ok:
                return JSONResponse({"status": "unavailable", "store": "ok", "upstream": detail}, status_code=503)
            return JSONResponse({"status": "ready", "store": "ok", "upstream": detail})
        return JSONResponse({"status": "ready", "store": "ok"})
