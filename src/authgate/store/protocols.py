"""The seams between the OAuth core and storage: small Protocols, one per concern.

`authgate.store.bundle.Stores` holds one of each, built by a backend: the SQL one
(`authgate.store.sql.sql_stores`) provides all of them for SQLite and PostgreSQL, and the
contract suite in `tests/contract/` runs over its bundle on each backend. Every method that
changes state has committed durably when it returns. This module imports no database or web
library, so the core may import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from authgate.store.models import (
    Attempt,
    AttemptNote,
    AuditEvent,
    AuthorizationCode,
    Client,
    ClientSource,
    CodeRedemption,
    ConnectRequest,
    Consent,
    KeyState,
    LiveGrant,
    Owner,
    RefreshFamily,
    RefreshGrant,
    RefreshToken,
    RemoteClient,
    SigningKey,
    StoredConnection,
    UpstreamTokens,
    User,
)


class ClientStore(Protocol):
    async def add_client(
        self, client: Client, *, max_clients: int | None = None, unverified_pool: int | None = None
    ) -> bool:
        """Insert; returns False (and inserts nothing) when `max_clients` would be exceeded.
        With `unverified_pool`, the client joins the pool of DCR clients no user has consented
        to, whose oldest are deleted to keep it at that size, and `max_clients` counts only
        the clients outside it (consented to, operator-made)."""

    async def get_client(self, client_id: str) -> Client | None: ...

    async def touch_client(self, client_id: str, now: float) -> None:
        """Record use (a token issued), so pruning spares it."""

    async def delete_client(self, client_id: str) -> bool: ...

    async def replace_client(self, client: Client, *, expected_token_hash: str) -> bool:
        """RFC 7592 update: give the stored client `client`'s metadata, secret hash and
        registration token hash, only if its registration token hash is still
        `expected_token_hash`; False (nothing changed) otherwise or when it is gone."""

    async def use_jti(self, kind: str, jti_hash: str, expires_at: float, now: float) -> bool:
        """Record a signed assertion's `jti` (of `kind`, as a hash) until `expires_at`; True for
        its first use, False when it is already recorded and not yet expired at `now`, on
        every replica alike (RFC 7523 §3: single use)."""

    async def purge_used_jtis(self, before: float) -> int:
        """Delete the `jti`s that expired before `before`; returns how many."""

    async def count_clients(self, *, source: ClientSource | None = None) -> int:
        """How many are stored (of `source` if given): a count, reading no row's data."""

    async def list_clients(
        self, *, limit: int | None = None, offset: int = 0, source: ClientSource | None = None
    ) -> list[Client]:
        """Stored clients (of `source` if given), newest first, ties by client_id (descending):
        the `offset` first skipped, then at most `limit` (None: every one; a page of the admin
        page or of `authgate clients list` always passes one, registration is open)."""

    async def prune_clients(self, unused_since: float, now: float) -> int:
        """Delete DCR clients last used before `unused_since` that hold no live refresh family."""

    async def prune_unverified_clients(self, unused_since: float) -> int:
        """Delete DCR clients no user has consented to, last used before `unused_since`."""

    async def prunable_clients(self, *, unverified_since: float, unused_since: float, now: float) -> list[Client]:
        """What `prune_unverified_clients(unverified_since)` then `prune_clients(unused_since,
        now)` would delete now, deleting nothing (`authgate clients prune --dry-run`)."""


class UserStore(Protocol):
    async def add_user(self, user: User) -> None:
        """Raises StoreError if the username is taken."""

    async def get_user(self, user_id: str) -> User | None: ...

    async def get_user_by_name(self, username: str) -> User | None: ...

    async def list_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        """Users newest first, ties by user_id (descending): the `offset` first skipped, then at
        most `limit` (None: every one)."""

    async def count_users(self) -> int: ...

    async def set_password(self, user_id: str, password_hash: str, now: float) -> bool:
        """Replace the hash and end what the old password opened, atomically: revoke the user's
        refresh families, delete their unredeemed codes, bump `session_version` (sign-in
        cookies carrying an older one are refused)."""

    async def set_roles(self, user_id: str, roles: Sequence[str]) -> bool: ...

    async def remove_user(self, user_id: str, now: float) -> bool:
        """Delete the user, their consents, and revoke their refresh families, atomically."""


class CodeStore(Protocol):
    async def save_code(self, code: AuthorizationCode) -> None:
        """Store the code and, in the same step, its refresh family (no token yet), so that a
        replay racing the redemption always finds the family to revoke."""

    async def consume_code(self, code_hash: str, now: float) -> CodeRedemption:
        """Atomically mark the code used. Exactly one concurrent caller gets `code`; a later
        caller gets `replayed` (the record); an unknown hash gets neither."""


class RefreshStore(Protocol):
    async def create_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        """Give the family (made by `save_code`, else made now) the values of `family` and its
        first token, atomically, keeping any revocation (a replay may have come first)."""

    async def get_family(self, family_id: str) -> RefreshFamily | None: ...

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None: ...

    async def get_refresh_grant(self, token_hash: str) -> RefreshGrant | None:
        """The token, its family, the family's liveness (as `family_is_live`) and its user, in
        one read; None when the token or its family is unknown."""

    async def rotate_refresh_token(self, old_hash: str, new: RefreshToken, successor: bytes, now: float) -> bool:
        """Atomically mark `old_hash` rotated (only if not yet rotated), store `successor`
        on it and insert `new`. Returns False, changing nothing, if another caller won."""

    async def revoke_family(self, family_id: str, reason: str, now: float) -> bool: ...

    async def revoke_families(
        self, *, client_id: str | None = None, user_id: str | None = None, reason: str, now: float
    ) -> int: ...

    async def family_is_live(self, family_id: str) -> bool:
        """True if the family exists, is not revoked, and its user and client still exist
        (a CIMD client counts as existing)."""

    async def purge_expired(self, before: float) -> int:
        """Delete what can no longer be used and expired before `before`: authorization codes,
        refresh tokens, and the families none of whose tokens or codes is left. Returns the
        number of rows deleted."""


class ConsentStore(Protocol):
    async def get_consent(self, user_id: str, client_id: str) -> Consent | None: ...

    async def save_consent(self, consent: Consent) -> None:
        """Upsert: the stored consent becomes the union of old and new scopes/resources."""


class KeyStore(Protocol):
    async def list_keys(self) -> list[SigningKey]: ...

    async def add_key(self, key: SigningKey) -> None: ...

    async def set_key_state(self, kid: str, state: KeyState, now: float) -> None: ...

    async def delete_key(self, kid: str) -> None: ...


class AuditBatchWriter(Protocol):
    """A database connection of its own for the audit trail's writer thread, used from that
    one thread only (never on the serving event loop)."""

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Insert, in one transaction committed on return; StoreError when the database refuses."""

    def close(self) -> None: ...


class AuditStore(Protocol):
    """The audit trail (`authgate.audit`): append-only."""

    async def add_audit_events(self, events: Sequence[AuditEvent]) -> None:
        """Insert, in one transaction committed on return."""

    def batch_writer(self) -> AuditBatchWriter | None:
        """A writer on a connection of its own for a background thread, or None when the
        database cannot be shared that way (in-memory SQLite): then the batches go through
        `add_audit_events` on the event loop."""

    async def list_audit_events(
        self, *, since: float | None = None, subject: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """The newest `limit` events matching, oldest first; `subject` matches the subject or
        the username."""


class UpstreamTokenStore(Protocol):
    """Proxy mode (`authgate.idp.proxy`): upstream identities and their sealed tokens."""

    async def save_upstream(self, record: UpstreamTokens) -> None:
        """Insert or replace the record of `record.user_id`, and create or update its local user
        (username) in the same transaction, committed on return."""

    async def get_upstream(self, user_id: str) -> UpstreamTokens | None: ...

    async def swap_upstream(self, record: UpstreamTokens, expected: bytes) -> bool:
        """Compare-and-swap: replace the sealed tokens (and `updated_at`) of `record.user_id`
        only if they are still `expected` (each sealing is unique: a fresh nonce); False when
        another writer changed them first, or there is no record. The local user is untouched.
        What makes one refresh per user across replicas (idp/proxy/vault.py)."""


class ConnectionStore(Protocol):
    """Connections to third-party providers (`authgate.connections`), authgate's registrations
    at remote authorization servers, and connect links. Tokens and secrets arrive sealed."""

    async def get_connection(self, user_id: str, provider: str) -> StoredConnection | None: ...

    async def put_connection(self, record: StoredConnection) -> StoredConnection:
        """Insert or replace the row of (user, provider) (a new connection, or a reconnect with
        more scopes), its claim cleared; returns it as stored (its new `version`)."""

    async def swap_connection(self, record: StoredConnection, expected_version: int) -> StoredConnection | None:
        """Compare-and-swap: write `record`'s tokens, scopes, expiry and claim only if the row's
        version is still `expected_version`; the stored row (version + 1), or None when another
        writer came first or the row is gone. One refresh per (user, provider) across replicas."""

    async def delete_connection(self, user_id: str, provider: str, *, version: int | None = None) -> bool:
        """Remove the row (only at `version` when given); True when one was removed."""

    async def list_connections(self, user_id: str | None = None, *, limit: int = 1000) -> list[StoredConnection]:
        """A user's connections (every user's when None), by user then provider."""

    async def get_remote_client(self, issuer: str) -> RemoteClient | None: ...

    async def add_remote_client(self, record: RemoteClient, *, replace: bool = False) -> RemoteClient:
        """Keep `record` unless a registration for its issuer exists (another replica won the
        race): the one stored is returned. `replace`: overwrite (the old one was refused)."""

    async def add_connect_request(self, request: ConnectRequest) -> None: ...

    async def get_connect_request(self, elicitation_id: str) -> ConnectRequest | None: ...

    async def open_connect_request(
        self, elicitation_id: str, state_hash: str, session_hash: str, sealed_pending: bytes
    ) -> bool:
        """Record the pending authorization of a link not completed yet (a new opening replaces
        the previous one, whose state then fails); False when the link is gone or completed."""

    async def take_connect_request(self, state_hash: str, now: float) -> ConnectRequest | None:
        """The link whose pending `state` hashes to `state_hash`, marked completed and its
        state cleared in the same transaction (single use on every replica); None when unknown,
        used or expired at `now`."""

    async def purge_connect_requests(self, before: float) -> int:
        """Delete links that expired before `before`; how many."""


class RateLimits(Protocol):
    """Counters of events per key (an address, `username|address`) over a window
    (`authgate.oauth.ratelimit`: the in-process one, and how keys and windows are read)."""

    async def hit(self, key: str) -> bool:
        """Count one event; False (and not counted) if the key is already at its limit."""
        ...

    async def retry_after(self, key: str) -> int:
        """Seconds until the key may hit again; 0 if it may now."""
        ...

    async def reset(self, key: str) -> None:
        """Forget the key's events (a successful sign-in)."""
        ...


class KnownAddresses(Protocol):
    """Which (account, address) keys have signed in successfully lately
    (`authgate.oauth.signin`: why a known address skips the per-account limit)."""

    async def is_known(self, key: str) -> bool: ...

    async def remember(self, key: str) -> None: ...


class RateLimitStore(Protocol):
    """Where the sign-in and registration limits and the known sign-in addresses are counted,
    shared by every replica. Keys are kept as HMAC-SHA-256 under `key_secret` (a plain hash of
    an IPv4 address or a common username is undone by hashing every candidate)."""

    def limiter(self, name: str, limit: int, window: int = 60, *, key_secret: bytes | None = None) -> RateLimits:
        """The limiter `name`: at most `limit` events per key in `window` seconds."""
        ...

    def known_addresses(self, *, key_secret: bytes | None = None) -> KnownAddresses: ...

    async def purge_expired(self) -> int:
        """Delete the windows of the limiters made here that no longer count, and addresses
        no longer known; returns how many rows."""
        ...


class SessionBindings(Protocol):
    """Where the gateway binds MCP session ids to their owners (`authgate.gateway.http.sessions`:
    why a session id is never authentication)."""

    async def owner(self, session_id: str) -> Owner | None:
        """The owner of a live binding (refreshing its idle clock), or None."""

    async def bind(self, session_id: str, owner: Owner) -> Owner:
        """Bind an id the upstream just issued; the first binding wins and is returned."""

    async def hold(self, session_id: str) -> None:
        """A stream of this session opened: it does not expire while any is open."""

    async def release(self, session_id: str) -> None:
        """A stream of this session closed."""

    async def drop(self, session_id: str) -> None:
        """The session ended (DELETE, or the upstream no longer knows it)."""


class SessionBindingStore(SessionBindings, Protocol):
    """`SessionBindings` kept in a store, shared by every replica."""

    async def purge_expired(self) -> int:
        """Delete every expired binding; returns how many."""
        ...

    async def close(self) -> None:
        """Stop what runs in the background (lease renewal); the store stays open."""


class GrantStore(CodeStore, RefreshStore, ConsentStore, Protocol):
    """What a user granted a client: consents, authorization codes, refresh families."""

    async def list_live_grants(
        self, *, user_id: str | None = None, client_id: str | None = None, limit: int = 1000, now: float | None = None
    ) -> list[LiveGrant]:
        """The grants that still work (see `LiveGrant`), of this user and/or client if given,
        most recently used first, at most `limit`; `now` defaults to the wall clock."""

    async def count_live_grants(self, client_ids: Sequence[str], *, now: float | None = None) -> dict[str, int]:
        """How many of the grants `list_live_grants` would list each of `client_ids` holds
        (a page of clients): counted by the database, one entry per client holding any."""

    async def revoke_client_grants(self, client_id: str, reason: str, now: float) -> int:
        """End everything `client_id` holds, atomically: revoke its refresh families (its
        refresh tokens fail at once, its access tokens at the guard's next re-check), delete
        its unredeemed codes and its consents (every user is asked again). Returns how many
        families were revoked. The client itself stays registered."""


class Store(ClientStore, UserStore, GrantStore, KeyStore, Protocol):
    """Everything the embedded authorization server needs, behind one handle."""

    async def open(self) -> None:
        """Connect and check the schema is current (migrating first if asked to)."""

    async def close(self) -> None: ...


class AttemptStore(Protocol):
    """The connection timeline (`authgate.oauth.attempts`): one row per OAuth flow attempt,
    bounded in rows and in age."""

    async def record_attempts(self, notes: Sequence[AttemptNote], *, max_rows: int, window: float) -> None:
        """Add each note, in order, to its attempt, in one transaction committed on return: the row whose
        `flow_key` matches; else, for a note with a `flow_key`, the client's newest attempt of
        the last `window` seconds that has none yet (its registration); else the row whose
        `family_key` matches; else, with `follow_client`, the client's newest attempt of the
        last `window` seconds; else (unless `join_only`) a new row, the oldest deleted so at
        most `max_rows` remain.
        Steps accumulate, the first failure stays, a missing client field is filled in."""

    async def list_attempts(
        self, *, since: float, client_id: str | None = None, failed_only: bool = False, limit: int = 200
    ) -> list[Attempt]:
        """Attempts started since `since`, newest first, at most `limit`; `client_id` matches
        the client id or name."""

    async def purge_attempts(self, before: float) -> int:
        """Delete attempts last updated before `before`; returns how many."""
