"""Start-up: open the store, load the secret and the signing keys, create the first user."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from authgate.config.settings import Settings
from authgate.errors import StoreError, StoreUnavailable
from authgate.guard.verifier import EmbeddedTokenVerifier
from authgate.oauth.attempts import AttemptRecorder
from authgate.oauth.authority import Authority
from authgate.oauth.cimd import CimdPolicy, CimdResolver
from authgate.oauth.client_keys import ClientKeys
from authgate.oauth.config import CoreConfig
from authgate.oauth.keys import SigningKeys
from authgate.oauth.passwords import PasswordChecks, hash_password, verify_password
from authgate.oauth.roles import ADMIN_ROLE
from authgate.oauth.sealing import derive_key
from authgate.server.security import Signer
from authgate.store.bundle import Purge, Stores
from authgate.store.files import private_dir, private_file
from authgate.store.models import User
from authgate.store.protocols import ClientStore, GrantStore, UserStore
from authgate.store.sql import sql_stores
from authgate.store.sql.engine import sqlite_file

log = logging.getLogger("authgate")

FIRST_PASSWORD_FILE = "initial-admin-password"


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings  # all of them, for the HTTP adapters; the core reads `auth.config`
    stores: Stores  # `auth.store` is `stores.core`; the limiters come from `stores.rate_limits`
    auth: Authority
    verifier: EmbeddedTokenVerifier
    signer: Signer

    async def close(self) -> None:
        self.auth.password_checks.close()
        await self.auth.attempts.aclose()  # its background writes, before the store closes
        if self.auth.cimd is not None:
            await self.auth.cimd.aclose()
        if self.auth.client_keys is not None:
            await self.auth.client_keys.aclose()
        await self.stores.close()


def _write_private(path: Path, data: str) -> None:
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)


def load_secret(settings: Settings) -> bytes:
    """The configured secret_key, or one generated once into data_dir/secret.key (0600)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.data_dir / "secret.key"
    if not path.exists():
        try:
            _write_private(path, secrets.token_urlsafe(32))
        except FileExistsError:
            pass  # another process created it first
    return path.read_text().strip().encode()


def prepare_sqlite(settings: Settings) -> None:
    """SQLite: data_dir (0700) and the database file (0600) made now, so a place this user
    cannot write is a ConfigError naming the setting the path came from."""
    if not settings.effective_database_url.startswith("sqlite"):
        return
    private_dir(settings.data_dir)
    path = sqlite_file(make_url(settings.effective_database_url))
    if path is not None:
        private_file(path, "database_url" if settings.database_url else "data_dir")


def open_store(settings: Settings) -> Stores:
    """The configured database's stores, not opened yet."""
    prepare_sqlite(settings)
    return sql_stores(settings.effective_database_url, migrate=settings.migrate == "auto")


async def with_store(settings: Settings, action: Callable[[Stores], Awaitable[int]]) -> int:
    """Open the configured stores, run `action` on them, close them (the CLI's one-shot commands)."""
    stores = open_store(settings)
    await stores.open()
    try:
        return await action(stores)
    finally:
        await stores.close()


async def ensure_first_user(settings: Settings, store: UserStore) -> Path | None:
    """No user yet: create `admin` with a random one-time password written to a 0600 file.
    The password never goes to a log; only the file's path is printed. Replicas starting
    together on one empty database race here: one creates `admin` and writes the file into its
    own data_dir; the others find the user made and write nothing (never a file whose password
    lost the race)."""
    if await store.count_users() > 0:
        return None
    password = secrets.token_urlsafe(18)
    try:
        await store.add_user(
            User(
                user_id=str(uuid.uuid4()),
                username="admin",
                password_hash=hash_password(password),
                created_at=time.time(),
                roles=(ADMIN_ROLE,),
            )
        )
    except StoreError:
        if await store.count_users() > 0:
            log.info("another replica created the first user 'admin'; its one-time password is in that one's data_dir")
            return None
        raise
    path = settings.data_dir / FIRST_PASSWORD_FILE
    path.unlink(missing_ok=True)
    _write_private(path, password + "\n")
    print(
        f"authgate: created user 'admin'; its one-time password is in {path}, removed once used: "
        "keep it when you sign in, or set your own with `authgate users set-password admin`",
        file=sys.stderr,
        flush=True,
    )
    return path


def _first_password_of(settings: Settings, user: User) -> Path | None:
    """data_dir/initial-admin-password if it holds `user`'s password (per the hash given)."""
    path = settings.data_dir / FIRST_PASSWORD_FILE
    try:
        password = path.read_text().strip()
    except OSError:
        return None
    return path if verify_password(user.password_hash, password) else None


def discard_first_password(settings: Settings, user: User) -> bool:
    """Remove data_dir/initial-admin-password if it holds `user`'s password (checked against
    the hash the caller read, before a change): it was there to be used once. True if removed."""
    path = _first_password_of(settings, user)
    if path is None:
        return False
    path.unlink(missing_ok=True)
    return True


async def _watch_first_password(settings: Settings, store: UserStore, auth: Authority) -> None:
    """The first password is one-time. A file whose password no longer works (changed, or the
    admin removed) goes now; one that still works goes at admin's first successful sign-in
    (`Hooks.signed_in`, run by oauth/signin.py; it uninstalls itself)."""
    path = settings.data_dir / FIRST_PASSWORD_FILE
    if not path.exists():
        return
    admin = await store.get_user_by_name("admin")
    if admin is None or await asyncio.to_thread(_first_password_of, settings, admin) is None:
        path.unlink(missing_ok=True)
        return

    async def used(user: User) -> None:
        if user.username == "admin" and await asyncio.to_thread(discard_first_password, settings, user):
            auth.hooks.signed_in = None
            log.info("admin signed in with the first password: removed %s", path)

    auth.hooks.signed_in = used


HOUSEKEEPING_INTERVAL = 6 * 3600.0
PURGE_AFTER = 86400.0  # expired codes and refresh tokens are kept a day, then deleted


async def prune_idle_clients(settings: Settings, store: ClientStore) -> int:
    """Open registration grows the client table (Claude registers on every connect): drop
    clients unused for client_idle_days that hold no live grant."""
    now = time.time()
    return await store.prune_clients(now - settings.client_idle_days * 86400, now)


async def purge_expired_grants(settings: Settings, store: GrantStore) -> int:
    """Codes and refresh tokens expired for a day (and at least an access token's lifetime,
    so no live access token names a deleted grant), and the grants left with neither."""
    keep = max(PURGE_AFTER, float(settings.access_token_ttl))
    return await store.purge_expired(time.time() - keep)


async def housekeeping(
    settings: Settings, stores: Stores, interval: float = HOUSEKEEPING_INTERVAL, purges: Sequence[Purge] = ()
) -> None:
    """Runs for the life of the server; every replica may run it (pruning is idempotent).
    Purges what the stores hold (`Stores.purges`), then `purges`: (what, delete-what-expired)
    pairs of other parts."""
    while True:
        await asyncio.sleep(interval)
        try:
            pruned = await prune_idle_clients(settings, stores.clients)
            if pruned:
                log.info("pruned %d idle clients", pruned)
            if purged := await purge_expired_grants(settings, stores.grants):
                log.info("purged %d expired codes, refresh tokens and grants", purged)
            if purged := await stores.attempts.purge_attempts(time.time() - settings.attempts_retention_hours * 3600):
                log.info("purged %d connection attempts older than attempts_retention_hours", purged)
            for what, purge in [*stores.purges(), *purges]:
                if removed := await purge():
                    log.info("purged %d expired %s", removed, what)
        except StoreUnavailable as exc:  # the database is down or dropped us: no traceback to read
            log.warning("housekeeping failed (%s); will retry", exc)
        except Exception:  # noqa: BLE001 - a failed round must not end the loop
            log.exception("housekeeping failed; will retry")


async def open_runtime(settings: Settings, *, create_first_user: bool = True) -> Runtime:
    stores = open_store(settings)
    await stores.open()
    secret = load_secret(settings)
    keys = SigningKeys(
        stores.keys, secret, retire_after=settings.access_token_ttl + 300, alg=settings.token_signing_alg
    )
    await keys.load()
    if create_first_user and settings.auth_mode != "proxy":  # proxy mode: people sign in upstream
        await ensure_first_user(settings, stores.users)
    await prune_idle_clients(settings, stores.clients)
    ssl_context = None
    if settings.cimd_ca_file is not None:  # TESTING ONLY: trust a stand-in host's CA as well
        import httpx  # only then: the CIMD fetcher loads it on its first fetch otherwise

        ssl_context = httpx.create_ssl_context()
        ssl_context.load_verify_locations(cafile=str(settings.cimd_ca_file))
    policy = CimdPolicy(
        allow_loopback_http=settings.cimd_allow_loopback_http,
        timeout=settings.cimd_timeout,
        max_bytes=settings.cimd_max_bytes,
    )
    cimd = CimdResolver(policy, ssl_context=ssl_context) if settings.cimd_enabled else None
    # Shared by every replica; keys kept as HMACs under a key derived from secret_key (the same
    # on every replica). One store: its limiters rest together when it fails.
    limits, key_secret = stores.rate_limits, derive_key(secret, "rate-limit-keys")
    auth = Authority(
        config=CoreConfig.from_settings(settings),
        store=stores.core,
        keys=keys,
        cimd=cimd,
        client_keys=ClientKeys(policy, ssl_context=ssl_context),  # a jwks_uri: fetched as CIMD documents are
        registrations=limits.limiter("registrations", settings.registrations_per_minute, key_secret=key_secret),
        logins=limits.limiter("logins", settings.login_attempts_per_minute, key_secret=key_secret),
        login_accounts=limits.limiter(
            "login-accounts", settings.login_attempts_per_account, 3600, key_secret=key_secret
        ),
        known_addresses=limits.known_addresses(key_secret=key_secret),
        password_checks=PasswordChecks(settings.max_concurrent_password_checks),
        attempts=AttemptRecorder(
            stores.attempts,
            max_rows=settings.attempts_max_rows,
            failures_per_minute=settings.attempts_failures_per_minute,
        ),
    )
    if settings.auth_mode != "proxy":
        await _watch_first_password(settings, stores.users, auth)
    verifier = EmbeddedTokenVerifier(auth, recheck_seconds=settings.token_cache_seconds)
    return Runtime(settings=settings, stores=stores, auth=auth, verifier=verifier, signer=Signer(secret))
