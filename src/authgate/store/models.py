"""The values the store keeps. Frozen dataclasses; times are Unix seconds (float).

Every grant-like record carries its client, its resources and its scopes, so one authgate
can protect several MCP servers without a schema change. Secrets never appear here in the
clear: codes and refresh tokens are stored as SHA-256 hashes, client secrets and user
passwords as argon2 hashes, signing keys encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ClientSource = Literal["dcr", "static", "cimd", "operator"]  # operator: `authgate clients add`
KeyState = Literal["next", "active", "retired"]


@dataclass(frozen=True, slots=True)
class Client:
    """A registered OAuth client (RFC 7591). CIMD clients are not stored: they are fetched."""

    client_id: str
    metadata: dict[str, Any]
    created_at: float
    last_used_at: float
    client_secret_hash: str | None = None
    client_secret_expires_at: int = 0  # 0 = never (RFC 7591 §3.2.1)
    source: ClientSource = "dcr"
    # SHA-256 of its RFC 7592 registration access token; None: no registration management
    registration_token_hash: str | None = None

    @property
    def redirect_uris(self) -> list[str]:
        return list(self.metadata.get("redirect_uris") or [])

    @property
    def token_endpoint_auth_method(self) -> str:
        return str(self.metadata.get("token_endpoint_auth_method") or "client_secret_basic")

    @property
    def name(self) -> str:
        return str(self.metadata.get("client_name") or self.client_id)


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    username: str
    password_hash: str
    created_at: float
    # names looked up in the `user_role_scopes` setting: which scopes this person may grant
    roles: tuple[str, ...] = ()
    # carried by sign-in cookies; a password change bumps it, so older cookies stop working
    session_version: int = 0


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    code_hash: str
    client_id: str
    user_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    code_challenge: str
    family_id: str  # allocated at issue, so a replayed code can revoke what it issued
    created_at: float
    expires_at: float
    auth_time: float
    consumed_at: float | None = None


@dataclass(frozen=True, slots=True)
class CodeRedemption:
    """Result of an atomic consume: `code` is set only for the one caller that won."""

    code: AuthorizationCode | None
    replayed: AuthorizationCode | None = None  # set when the code existed but was already used


@dataclass(frozen=True, slots=True)
class RefreshFamily:
    """All refresh tokens descending from one authorization (RFC 9700 §4.14.2)."""

    family_id: str
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None
    revoked_reason: str | None = None


@dataclass(frozen=True, slots=True)
class LiveGrant:
    """A grant that still works (`authgate grants list`, `clients list`, the admin page): a
    refresh family not revoked, whose user and client exist, with a refresh token not yet
    expired. Never a token or a hash: what an operator needs to decide what to revoke."""

    family_id: str
    client_id: str
    client_name: str  # the client's registered name; a CIMD client's id (its document is not stored)
    user_id: str
    username: str
    scopes: tuple[str, ...]
    created_at: float  # the authorization (consent and code exchange)
    last_used_at: float  # its newest refresh token's issue: the code exchange or the last refresh
    expires_at: float  # when its newest refresh token expires, unless refreshed before


@dataclass(frozen=True, slots=True)
class RefreshToken:
    token_hash: str
    family_id: str
    issued_at: float
    expires_at: float
    rotated_at: float | None = None
    # The token response that replaced this token, encrypted under a key derived from this
    # token's plaintext: only its holder can read it back during the grace window.
    successor: bytes | None = None


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """What a refresh checks, read at once (`RefreshStore.get_refresh_grant`): the presented
    token, its family, whether the family is live (`family_is_live`) and its user (None: gone)."""

    token: RefreshToken
    family: RefreshFamily
    live: bool
    user: User | None


@dataclass(frozen=True, slots=True)
class Consent:
    user_id: str
    client_id: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    granted_at: float


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    state: KeyState
    public_jwk: dict[str, Any]
    private_jwk_encrypted: bytes
    created_at: float
    activated_at: float | None = None
    retired_at: float | None = None


@dataclass(frozen=True, slots=True)
class GrantStatus:
    """What the guard re-checks when a token is not in its cache."""

    live: bool
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


AuditDecision = Literal["allowed", "refused"]


@dataclass(slots=True)
class AuditEvent:
    """One MCP operation as the policy layer saw it. Never a token; arguments only when the
    `audit_arguments` setting asks for them. Not changed once built, but not a frozen
    dataclass: one is built per call on the serving loop, and a frozen one took 2.5x as long.
    `audit/events.py` builds it by position: keep the field order."""

    at: float
    method: str
    decision: AuditDecision
    subject: str | None = None
    username: str | None = None
    client_id: str | None = None
    target: str | None = None  # tool or prompt name, resource URI
    reason: str | None = None  # why it was refused
    status: int | None = None  # HTTP status the protected app answered (None: never reached it)
    latency_ms: float | None = None
    arguments: str | None = None  # JSON text
    event_id: int | None = None  # assigned by the store


@dataclass(frozen=True, slots=True)
class UpstreamTokens:
    """Proxy mode: a local user's upstream identity and its upstream tokens, sealed (AES-GCM
    under a key derived from secret_key) — the plaintext tokens never reach the store."""

    user_id: str  # the local user: the upstream subject (`iss|sub`, `github|id`)
    provider: str
    username: str
    email: str | None
    sealed_tokens: bytes
    updated_at: float


@dataclass(frozen=True, slots=True)
class Owner:
    """Who opened an MCP session at the gateway: the (subject, client) its id is bound to."""

    subject: str
    client_id: str


# The steps of a connection, in the order a client reaches them (oauth/attempts.py records them).
ATTEMPT_STEPS = ("metadata", "register", "authorize", "sign-in", "consent", "token", "mcp", "refresh")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One OAuth connection attempt as a story (`authgate attempts`, the admin page): which
    client, how far it got, and the first failure with its reason and its fix. Never a secret,
    code, token, password or code_verifier; every text bounded (oauth/attempts.py)."""

    attempt_id: str
    started_at: float
    updated_at: float
    steps: tuple[str, ...]  # the ATTEMPT_STEPS reached, in that order
    client_id: str | None = None  # a DCR id, a CIMD URL, or what an unknown client sent
    client_name: str | None = None
    client_kind: str | None = None  # dcr, cimd, operator, static, or unknown
    software: str | None = None  # RFC 7591 software_id and software_version, if the client gave them
    failed_step: str | None = None  # where it failed first (None: no failure recorded)
    reason: str | None = None
    fix: str | None = None

    @property
    def failed(self) -> bool:
        return self.failed_step is not None


@dataclass(frozen=True, slots=True)
class AttemptNote:
    """What the recorder tells the store about one step (`AttemptStore.record_attempts`): the
    attempt it belongs to is found by `flow_key` (the authorization request), else
    `family_key` (the grant), else, with `follow_client`, the client's newest attempt."""

    at: float
    steps: tuple[str, ...] = ()  # reached by this step
    client_id: str | None = None
    client_name: str | None = None
    client_kind: str | None = None
    software: str | None = None
    flow_key: str | None = None  # SHA-256 of client_id and code_challenge
    family_key: str | None = None  # SHA-256 of the refresh family's id
    follow_client: bool = False
    join_only: bool = False  # continues a story only: dropped when no attempt is found
    failed_step: str | None = None
    reason: str | None = None
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class StoredConnection:
    """A user's connection to a third-party provider (authgate.connections): the tokens sealed
    (AES-GCM, the user and provider as associated data), never in the clear here. `version`
    grows with every write: the compare-and-swap of a refresh; `renewing_until` > now: a
    replica is refreshing it (the others wait for the row to change)."""

    user_id: str
    provider: str
    issuer: str
    sealed_tokens: bytes
    scopes: tuple[str, ...]
    expires_at: float | None
    created_at: float
    updated_at: float
    renewing_until: float = 0.0
    version: int = 1


@dataclass(frozen=True, slots=True)
class RemoteClient:
    """authgate's own client at a remote authorization server (`how`: dcr or cimd), by issuer:
    registered once, reused by every replica and after a restart. The secret sealed."""

    issuer: str
    client_id: str
    sealed_secret: bytes | None
    auth_method: str
    how: str
    redirect_uri: str
    registered_at: float


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """A connect link (`/connect/{elicitation_id}`) made for one user and MCP client, and once
    opened its pending authorization: `state` as SHA-256, the browser session's hash, the
    PKCE verifier and the rest sealed. Consumed by the callback (single use)."""

    elicitation_id: str
    user_id: str
    client_id: str
    provider: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float
    state_hash: str | None = None
    session_hash: str | None = None
    sealed_pending: bytes | None = None
    completed_at: float | None = None
