"""The embedded authorization server's dependencies, gathered in one immutable value that
every core function takes first. Not a god object: it holds no behaviour of its own."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from authgate.config.urls import PublicUrls
from authgate.oauth.attempts import AttemptRecorder
from authgate.oauth.cimd import CimdResolver
from authgate.oauth.client_keys import ClientKeys
from authgate.oauth.config import CoreConfig
from authgate.oauth.keys import SigningKeys
from authgate.oauth.passwords import PasswordChecks
from authgate.oauth.ratelimit import RateLimiter, RateLimits
from authgate.oauth.signin import KnownAddresses, KnownAddressesInMemory
from authgate.store.models import User
from authgate.store.protocols import Store


class RefreshCheck(Protocol):
    """Asked with the user id of a refresh-token grant before that token is rotated (not for a
    successor replayed in the grace window). Returning lets the rotation go on. Raising
    InvalidGrant ends the grant: grants.py revokes its family. Raising any other OAuthError
    (TemporarilyUnavailable) changes nothing: the same refresh token may be tried again."""

    async def __call__(self, user_id: str) -> None: ...


class Hooks:
    """Checks another part installs into the core when it starts (proxy mode's upstream grant
    check; the removal of the one-time first password after its first use). The one mutable
    slot of the Authority, on purpose: the Authority is built before the parts that install
    them, and every holder of it must see the same checks."""

    __slots__ = ("refresh_check", "signed_in")

    def __init__(self) -> None:
        self.refresh_check: RefreshCheck | None = None
        # after a successful password sign-in (server/runtime.py: the one-time first password)
        self.signed_in: Callable[[User], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True)
class Authority:
    config: CoreConfig  # the settings the core reads (oauth/config.py)
    store: Store
    keys: SigningKeys
    cimd: CimdResolver | None
    clock: Callable[[], float] = time.time
    registrations: RateLimits = field(default_factory=lambda: RateLimiter(10))
    logins: RateLimits = field(default_factory=lambda: RateLimiter(5))
    # sign-in (oauth/signin.py): per account an hour, the addresses exempt from it, argon2 off the loop
    login_accounts: RateLimits = field(default_factory=lambda: RateLimiter(20, 3600))
    known_addresses: KnownAddresses = field(default_factory=KnownAddressesInMemory)
    password_checks: PasswordChecks = field(default_factory=lambda: PasswordChecks(4))
    hooks: Hooks = field(default_factory=Hooks)
    attempts: AttemptRecorder = field(default_factory=AttemptRecorder)  # the connection timeline; off by default
    client_keys: ClientKeys | None = None  # private_key_jwt clients' keys (oauth/client_keys.py); None: refused

    @property
    def urls(self) -> PublicUrls:
        return self.config.urls

    @property
    def issuer(self) -> str:
        return self.config.urls.issuer

    @property
    def resources(self) -> tuple[str, ...]:
        """Every resource this authority issues tokens for (one MCP endpoint today)."""
        return (self.config.urls.resource,)
