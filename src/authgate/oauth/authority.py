"""The embedded authorization server's dependencies, gathered in one immutable value that
every core function takes first. Not a god object: it holds no behaviour of its own."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from authgate.config.settings import Settings
from authgate.config.urls import PublicUrls
from authgate.oauth.cimd import CimdResolver
from authgate.oauth.keys import SigningKeys
from authgate.oauth.ratelimit import RateLimiter
from authgate.store.protocols import Store


@dataclass(frozen=True, slots=True)
class Authority:
    settings: Settings
    store: Store
    keys: SigningKeys
    cimd: CimdResolver | None
    clock: Callable[[], float] = time.time
    registrations: RateLimiter = field(default_factory=lambda: RateLimiter(10))
    logins: RateLimiter = field(default_factory=lambda: RateLimiter(5))

    @property
    def urls(self) -> PublicUrls:
        return self.settings.urls

    @property
    def issuer(self) -> str:
        return self.settings.urls.issuer

    @property
    def resources(self) -> tuple[str, ...]:
        """Every resource this authority issues tokens for (one MCP endpoint today)."""
        return (self.settings.urls.resource,)
