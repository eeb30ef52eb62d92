"""Sign-in with a password: the limits around the check, and the check itself.

Every attempt is counted before its password is checked, so parallel guesses cannot all pass
a check made before any of them was counted. Addresses count by `address_key` (IPv4 whole,
IPv6 by /64). Two limits:

- **per (account, address)**, `login_attempts_per_minute`: one source guessing one account.
  A successful sign-in clears it.
- **per account**, `login_attempts_per_account` an hour, whatever the address: many sources
  (a botnet, a cloud range) guessing one account. Not cleared by a success.

**Why the owner is not locked out.** A per-account limit is also a way to lock the owner
out: an attacker who fills it would keep them from signing in. So an address that has
signed in to the account successfully before — a *known address*, remembered
`KNOWN_FOR` seconds after its last success, through the store on every replica — is not
subject to the per-account limit, only to its own per-(account, address) one. We chose this
over a progressive delay (which still lets a patient attacker deny service) and over a
second factor (authgate has none). The cost: an attacker who shares the owner's address
(the same IPv4 NAT, the same IPv6 /64) guesses at the per-(account, address) rate, and the
owner on a new address waits out the per-account limit while an attack goes on.

Unknown usernames take the same path and the same time (the dummy argon2 hash), so neither
the answer nor the limits reveal whether an account exists.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from authgate.errors import SlowDown
from authgate.oauth.ratelimit import address_key
from authgate.store.models import User
from authgate.store.protocols import KnownAddresses  # a store Protocol; named here too

if TYPE_CHECKING:
    from authgate.oauth.authority import Authority

__all__ = ["KNOWN_FOR", "KnownAddresses", "KnownAddressesInMemory", "sign_in"]

KNOWN_FOR = 90 * 86400  # seconds an address stays known after its last successful sign-in


class KnownAddressesInMemory:
    """`KnownAddresses` in this process (no store; and the SQL one's memory when the store
    cannot answer): the `max_keys` most recently remembered."""

    def __init__(
        self, known_for: float = KNOWN_FOR, *, clock: Callable[[], float] = time.time, max_keys: int = 100_000
    ) -> None:
        self.known_for = known_for
        self._clock = clock
        self._max_keys = max_keys
        self._seen: OrderedDict[str, float] = OrderedDict()

    async def is_known(self, key: str) -> bool:
        seen = self._seen.get(key)
        return seen is not None and self._clock() - seen < self.known_for

    async def remember(self, key: str) -> None:
        self._seen[key] = self._clock()
        self._seen.move_to_end(key)
        while len(self._seen) > self._max_keys:
            self._seen.popitem(last=False)


async def sign_in(auth: Authority, username: str, password: str, address: str) -> User | None:
    """The user if `password` is theirs; None if not (or no such user). Raises SlowDown (with
    its Retry-After) when a limit refuses the attempt; the password is then not checked."""
    account = username.lower()
    pair = f"{account}|{address_key(address)}"
    if not await auth.logins.hit(pair):
        raise SlowDown(
            "too many sign-in attempts from this address", retry_after=max(1, await auth.logins.retry_after(pair))
        )
    if not await auth.known_addresses.is_known(pair) and not await auth.login_accounts.hit(account):
        raise SlowDown(
            "too many sign-in attempts for this account",
            retry_after=max(1, await auth.login_accounts.retry_after(account)),
        )
    user = await auth.store.get_user_by_name(username)
    matches = await auth.password_checks.verify(user.password_hash if user else None, password)
    if user is None or not matches:
        return None
    await auth.logins.reset(pair)
    await auth.known_addresses.remember(pair)
    if auth.hooks.signed_in is not None:
        await auth.hooks.signed_in(user)
    return user
