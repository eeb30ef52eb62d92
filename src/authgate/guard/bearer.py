"""The bearer check (RFC 6750): who is calling, or the answer that says why nobody is.

* no token, or not a bearer one: 401 with the RFC 9728 challenge (`resource_metadata`, the
  baseline `scope`);
* a token the verifier refuses: 401 `invalid_token`;
* a token holding none of the scopes this resource offers: 403 `insufficient_scope` naming
  them plus what the token holds (MCP 2025-11-25 scope challenge); per-operation scopes are
  the policy's job (`policy/enforcer.py`);
* a token that cannot be checked now (the IdP is unreachable): 503 with its Retry-After and
  no challenge, or the client would start a sign-in that cannot help.

`BearerCheck.identify` returns an `Identity` or the answer, an ASGI app (`JsonAnswer`, or the
503's response); the gate (`server/gate.py`) sends it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from authgate.error_responses import oauth_error
from authgate.errors import InvalidToken, OAuthError, TemporarilyUnavailable
from authgate.guard.challenge import bearer_challenge, dpop_challenge
from authgate.guard.identity import Identity
from authgate.guard.verifier import TokenVerifier

__all__ = ["BearerCheck", "JsonAnswer", "bearer_token"]


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    """A small JSON answer, `Cache-Control: no-store`, as an ASGI app."""

    status: int
    body: Mapping[str, object]
    headers: tuple[tuple[bytes, bytes], ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        payload = json.dumps(self.body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"cache-control", b"no-store"),
            *self.headers,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` value (scheme case-insensitive), else None."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    return authorization[7:].strip() or None


class BearerCheck:
    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        resource_metadata: str,
        scopes: tuple[str, ...],
        dpop_algs: tuple[str, ...] = (),
        dpop_only: bool = False,
        dpop_scopes: frozenset[str] = frozenset(),
    ) -> None:
        self.verifier = verifier
        self.resource_metadata = resource_metadata
        self.scopes = scopes
        # RFC 9449 §7.1: the DPoP scheme's challenge beside Bearer's on a 401 (guard/dpop.py);
        # `dpop_only`: the Bearer scheme is refused altogether (the dpop_required setting)
        self.dpop_algs = dpop_algs
        self.dpop_only = dpop_only
        self.dpop_scopes = dpop_scopes  # `dpop_required_scopes`: a Bearer token holding one is refused
        self.dpop_rules = dpop_only or bool(dpop_scopes)  # one test on the Bearer path when neither is set
        self._offered = frozenset(scopes)
        # a verifier's cache, asked without a coroutine (EmbeddedTokenVerifier.cached)
        self._cached: Callable[[str], Identity | None] | None = getattr(verifier, "cached", None)

    def missing(self, authorization: str | None) -> JsonAnswer:
        """The 401 for a request without a bearer token."""
        return self.challenge(401, None, "no bearer token" if not authorization else "not a bearer token")

    def known(self, token: str) -> Identity | None:
        """The caller of a token the verifier checked recently and that holds a scope of this
        resource; None: ask `identify`."""
        identity = self._cached(token) if self._cached is not None else None
        if identity is None or (self._offered and self._offered.isdisjoint(identity.scopes)):
            return None
        return identity

    async def identify(self, token: str, *, dpop: bool = False) -> Identity | ASGIApp:
        """`dpop`: the token came with the DPoP scheme, whose challenge carries the error."""
        try:
            identity = await self.verifier.verify(token)
        except TemporarilyUnavailable as exc:
            return oauth_error(exc)  # 503 with its Retry-After
        except OAuthError as exc:
            return self.challenge(401, InvalidToken.error, exc.description, dpop_error=dpop)
        if self._offered and self._offered.isdisjoint(identity.scopes):
            return self.challenge(
                403,
                "insufficient_scope",
                f"token holds none of the scopes {' '.join(self.scopes)}",
                scopes=tuple(dict.fromkeys((*self.scopes, *identity.scopes))),
                dpop_error=dpop,
            )
        return identity

    def refuses_bearer(self, identity: Identity) -> bool:
        """An unbound token the settings say must be DPoP-bound (asked only with `dpop_rules`)."""
        return self.dpop_only or not self.dpop_scopes.isdisjoint(identity.scopes)

    def not_bearer(self, identity: Identity) -> JsonAnswer:
        """A valid token that may not be used as a bearer token: DPoP-bound (RFC 9449 §7.2), or
        every token must be (`dpop_only`)."""
        why = (
            "this token is DPoP-bound"
            if identity.jkt is not None
            else "this server accepts DPoP tokens only"
            if self.dpop_only
            else "tokens for these scopes must be DPoP-bound"
        )
        description = f"{why}: send it as Authorization: DPoP with a DPoP proof"
        return self.challenge(401, InvalidToken.error, description, dpop_error=True)  # the remedy is DPoP's

    def challenge(
        self,
        status: int,
        error: str | None,
        description: str,
        scopes: tuple[str, ...] | None = None,
        *,
        dpop_error: bool = False,
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> JsonAnswer:
        """The answer and its challenges: Bearer's, DPoP's beside it on a 401 when DPoP is
        accepted (RFC 9449 §7.1), DPoP's alone when Bearer is not; `dpop_error`: the error
        belongs to the DPoP scheme (a proof's), so Bearer's challenge carries none."""
        shown = scopes if scopes is not None else self.scopes
        body = {"error": error or "unauthorized", "error_description": description}
        headers: list[tuple[bytes, bytes]] = []
        if not self.dpop_only and (status == 401 or not dpop_error):
            challenge = bearer_challenge(
                resource_metadata=self.resource_metadata,
                scopes=shown,
                error=None if dpop_error else error,
                description=None if dpop_error else description,
            )
            headers.append((b"www-authenticate", challenge.encode()))
        if self.dpop_algs and (status == 401 or dpop_error or self.dpop_only):
            mine = dpop_error or self.dpop_only
            dpop = dpop_challenge(
                resource_metadata=self.resource_metadata,
                scopes=shown,
                algs=self.dpop_algs,
                error=error if mine else None,
                description=description if mine else None,
            )
            headers.append((b"www-authenticate", dpop.encode()))
        return JsonAnswer(status, body, (*headers, *extra))
