"""Which scopes a person may grant (embedded mode): the base `scopes` everyone may, plus what
the `user_role_scopes` setting gives each of their roles ("*" = every offered scope).

Granted = requested ∩ offered/client-allowed ∩ user-allowed, applied where a person is known:
at consent (authorize.for_user) and again when a code or refresh token becomes an access token
(grants.py), so taking a role away narrows the next refresh. In proxy mode people sign in
upstream and its allow-lists decide who gets in; no per-user limit applies there.
"""

from __future__ import annotations

import re

from authgate.oauth.config import CoreConfig
from authgate.oauth.scopes import OFFLINE_ACCESS
from authgate.store.models import User

ADMIN_ROLE = "admin"  # the first user's role; the default user_role_scopes gives it "*"
EVERY_SCOPE = "*"
ROLE_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def may_grant(config: CoreConfig, roles: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The offered scopes a person holding `roles` may grant, in offered order."""
    offered = config.offered_scopes
    allowed = set(config.scopes)
    for role in roles:
        named = config.user_role_scopes.get(role, ())
        allowed.update(offered if EVERY_SCOPE in named else named)
    return tuple(s for s in offered if s in allowed)


def grantable_by(config: CoreConfig, user: User) -> frozenset[str] | None:
    """What `user` may grant (`offline_access` always: it is no permission of its own);
    None when no per-user limit applies (auth_mode proxy)."""
    if config.auth_mode != "embedded":
        return None
    return frozenset((*may_grant(config, user.roles), OFFLINE_ACCESS))


def limit(granted: tuple[str, ...], allowed: frozenset[str] | None) -> tuple[str, ...]:
    return granted if allowed is None else tuple(s for s in granted if s in allowed)


def grants_nothing(granted: tuple[str, ...]) -> bool:
    """No permission left (a bare `offline_access` opens nothing)."""
    return not [s for s in granted if s != OFFLINE_ACCESS]
