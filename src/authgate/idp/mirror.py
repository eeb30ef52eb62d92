"""Opt-in shim (`mirror_as_metadata`): the IdP's metadata served as authgate's own RFC 8414
document, for MCP clients from before 2025-06-18 that look for the authorization server at
the MCP server's origin instead of reading the protected resource metadata.

RFC 8414 §3.3: the `issuer` in a metadata document must be the issuer whose well-known URL
served it, so the mirror's `issuer` is authgate's public URL, not the IdP's. Its endpoints are
the IdP's. Consequences (docs/idp/external.md): tokens still carry the IdP's `iss`, and an RFC
9207 `iss` in authorization responses names the IdP, so the mirror does not claim
`authorization_response_iss_parameter_supported`. Current clients read the PRM, which names
the IdP itself, and never use the mirror.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import httpx

from authgate.errors import FetchError, TemporarilyUnavailable
from authgate.idp.discovery import discover

# Claims the mirror cannot truthfully repeat under another issuer.
_NOT_MIRRORED = ("authorization_response_iss_parameter_supported", "mtls_endpoint_aliases")


class MetadataMirror:
    def __init__(
        self,
        idp_issuer: str,
        own_issuer: str,
        http: httpx.AsyncClient,
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idp_issuer = idp_issuer
        self._own_issuer = own_issuer
        self._http = http
        self._ttl = ttl
        self._clock = clock
        self._document: dict[str, Any] | None = None
        self._fetched_at = -math.inf

    async def document(self) -> dict[str, Any]:
        if self._document is None or self._clock() - self._fetched_at > self._ttl:
            try:
                found = await discover(self._http, self._idp_issuer)
            except FetchError as exc:
                if self._document is None:
                    raise TemporarilyUnavailable(str(exc), retry_after=30) from None
                return self._document  # stale beats nothing while the IdP is down
            upstream = found.document or {}
            self._document = {
                **{k: v for k, v in upstream.items() if k not in _NOT_MIRRORED},
                "issuer": self._own_issuer,
            }
            self._fetched_at = self._clock()
        return self._document
