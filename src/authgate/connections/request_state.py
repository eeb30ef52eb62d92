"""authgate's own `requestState` (MCP 2026-07-28 multi round-trip requests), sealed to the
person and the client it was made for.

When authgate answers a call with an `InputRequiredResult` asking for a connection, the
client echoes `requestState` on its retry. That value is attacker-controlled input (MCP
2026-07-28 basic/patterns/mrtr §Server Requirements 4), so it is AES-256-GCM sealed under a
key derived from `secret_key` (oauth/sealing.py) and carries what the retry must match:

* the person (subject) and the client (client id): another user's or client's state is refused;
* the request: method, tool name and a digest of its arguments (§Server Requirements 5);
* an expiry (the connect link's lifetime) and a nonce, spent once the retry is served;
* when the call was itself the retry of the upstream's own round trip, the upstream's
  `requestState` and `inputResponses`, handed back to it untouched once the connection exists.

The token is `authgate.rs1.` + base64url(sealed): the prefix tells authgate's state from an
upstream's (which authgate passes on untouched and never opens), and authgate's is never
forwarded. Bounded: a state over MAX_STATE_CHARS is refused unread, the upstream's part is
carried only up to MAX_CARRIED_BYTES.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authgate.errors import AuthgateError
from authgate.oauth.sealing import SealError, derive_key, seal, unseal

__all__ = [
    "MAX_CARRIED_BYTES",
    "MAX_STATE_CHARS",
    "PREFIX",
    "RequestStateRefused",
    "RequestStates",
    "StateClaims",
    "arguments_digest",
    "is_authgate_state",
]

PREFIX = "authgate.rs1."
MAX_STATE_CHARS = 24 * 1024  # a sealed state larger than this was not made here: refused unread
MAX_CARRIED_BYTES = 12 * 1024  # the upstream's requestState + inputResponses carried inside ours
_AAD = b"authgate/connections/request-state"
_SPENT_MAX = 10_000  # nonces remembered per process (each until its state expires)


class RequestStateRefused(AuthgateError):
    """A retry's `requestState` is not one authgate made for this person, client and request,
    or has expired or been used: JSON-RPC -32602 (the client starts the call again without it)."""


@dataclass(frozen=True, slots=True)
class StateClaims:
    """What authgate's requestState holds (sealed)."""

    subject: str
    client_id: str
    method: str
    name: str
    arguments: str  # arguments_digest() of the call
    provider: str
    elicitation_id: str
    expires: int  # epoch seconds
    nonce: str
    upstream_state: str | None = None  # the upstream's own requestState, when the call carried one
    upstream_responses: dict[str, Any] | None = None  # the inputResponses meant for the upstream


def arguments_digest(arguments: Any) -> str:
    """SHA-256 of the call's arguments as canonical JSON (key order does not matter)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_authgate_state(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def carried_size(state: Any, responses: Any) -> int:
    """The bytes the upstream's part would take inside authgate's state."""
    return len(json.dumps([state, responses], separators=(",", ":")).encode())


class RequestStates:
    """Seals and opens authgate's requestState; remembers (per process) the ones used."""

    def __init__(self, secret: bytes, ttl: int, clock: Callable[[], float] = time.time) -> None:
        self._key = derive_key(secret, "authgate/connections/request-state")
        self.ttl = ttl
        self.clock = clock
        self._spent: OrderedDict[str, int] = OrderedDict()

    def claims(self, **fields: Any) -> StateClaims:
        """New claims expiring `ttl` from now, with a fresh nonce."""
        return StateClaims(expires=int(self.clock()) + self.ttl, nonce=secrets.token_urlsafe(12), **fields)

    def seal(self, claims: StateClaims) -> str:
        payload = {
            "s": claims.subject,
            "c": claims.client_id,
            "m": claims.method,
            "n": claims.name,
            "a": claims.arguments,
            "p": claims.provider,
            "e": claims.elicitation_id,
            "x": claims.expires,
            "o": claims.nonce,
        }
        if claims.upstream_state is not None or claims.upstream_responses is not None:
            if carried_size(claims.upstream_state, claims.upstream_responses) <= MAX_CARRIED_BYTES:
                payload["us"] = claims.upstream_state
                payload["ur"] = claims.upstream_responses
        sealed = seal(self._key, json.dumps(payload, separators=(",", ":")).encode(), _AAD)
        return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def open(self, token: str, *, subject: str, client_id: str, method: str, name: str, arguments: str) -> StateClaims:
        """The claims of a state made here for this person, client and request, not expired and
        not used; else RequestStateRefused (one message for forged and unknown: nothing to learn)."""
        claims = self._unsealed(token)
        if claims.subject != subject or claims.client_id != client_id:
            raise RequestStateRefused("requestState was made for another user or client")
        if (claims.method, claims.name, claims.arguments) != (method, name, arguments):
            raise RequestStateRefused("requestState belongs to a different request (method, tool or arguments)")
        now = int(self.clock())
        if claims.expires <= now:
            raise RequestStateRefused("requestState has expired")
        if claims.nonce in self._spent:
            raise RequestStateRefused("requestState was already used")
        return claims

    def spend(self, claims: StateClaims) -> None:
        """The retry carrying these claims is being served: the same state is refused from now on
        (in this process; other replicas still bound it by its expiry and request)."""
        now = int(self.clock())
        while self._spent and (len(self._spent) >= _SPENT_MAX or next(iter(self._spent.values())) <= now):
            self._spent.popitem(last=False)
        self._spent[claims.nonce] = claims.expires

    def _unsealed(self, token: str) -> StateClaims:
        if len(token) > MAX_STATE_CHARS or not token.startswith(PREFIX):
            raise RequestStateRefused("requestState is not one authgate made")
        body = token[len(PREFIX) :]
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            p = json.loads(unseal(self._key, blob, _AAD))
            return StateClaims(
                subject=p["s"],
                client_id=p["c"],
                method=p["m"],
                name=p["n"],
                arguments=p["a"],
                provider=p["p"],
                elicitation_id=p["e"],
                expires=int(p["x"]),
                nonce=p["o"],
                upstream_state=p.get("us"),
                upstream_responses=p.get("ur"),
            )
        except (binascii.Error, ValueError, SealError, KeyError, TypeError):
            raise RequestStateRefused("requestState is not one authgate made") from None
