"""The schema as SQLAlchemy Core tables: what the store queries against.

Migrations in `migrations/versions/` are the source of truth for what exists in a database;
this module must describe the schema at head (a test compares the two).

Times are Unix seconds as double precision. Scopes and resources are JSON arrays. No foreign
key points at `clients`: a grant's client may be a CIMD URL that is fetched, never stored.
"""

from __future__ import annotations

import sqlalchemy as sa

# Deterministic constraint names, so later migrations can drop or alter them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

clients = sa.Table(
    "clients",
    metadata,
    sa.Column("client_id", sa.String(2048), primary_key=True),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_used_at", sa.Double, nullable=False, index=True),
    sa.Column("client_secret_hash", sa.String(255), nullable=True),
    sa.Column("client_secret_expires_at", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("source", sa.String(16), nullable=False),
    # a user consented to it (kept with the consents, `sql/store.py`): a DCR client without is
    # in the unverified pool, which this index finds oldest first without reading the others
    sa.Column("consented", sa.Boolean, nullable=False, server_default=sa.false()),
    # SHA-256 of the RFC 7592 registration access token; NULL: the client has none
    sa.Column("registration_token_hash", sa.String(64), nullable=True),
    sa.Index("ix_clients_pool", "source", "consented", "created_at", "client_id"),
    # the listings' order, newest first (admin page, `clients list`): a page reads its rows only
    sa.Index("ix_clients_created", "created_at", "client_id"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("username", sa.String(255), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    # role names (the user_role_scopes setting says what each may grant), a JSON array
    sa.Column("roles", sa.JSON, nullable=False, server_default=sa.text("'[]'")),
    # carried by sign-in cookies; bumped by a password change, which ends older sessions
    sa.Column("session_version", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_users_created", "created_at", "user_id"),  # the listings' order, newest first
)

authorization_codes = sa.Table(
    "authorization_codes",
    metadata,
    sa.Column("code_hash", sa.String(128), primary_key=True),
    sa.Column("client_id", sa.String(2048), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("resources", sa.JSON, nullable=False),
    sa.Column("code_challenge", sa.String(255), nullable=False),
    sa.Column("family_id", sa.String(255), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    sa.Column("auth_time", sa.Double, nullable=False),
    sa.Column("consumed_at", sa.Double, nullable=True),
)

refresh_families = sa.Table(
    "refresh_families",
    metadata,
    sa.Column("family_id", sa.String(255), primary_key=True),
    sa.Column("client_id", sa.String(2048), nullable=False, index=True),
    sa.Column("user_id", sa.String(255), nullable=False, index=True),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("resources", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double, nullable=True),
    sa.Column("revoked_reason", sa.Text, nullable=True),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.String(128), primary_key=True),
    sa.Column(
        "family_id",
        sa.String(255),
        sa.ForeignKey("refresh_families.family_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("issued_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("rotated_at", sa.Double, nullable=True),
    sa.Column("successor", sa.LargeBinary, nullable=True),
)

consents = sa.Table(
    "consents",
    metadata,
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("client_id", sa.String(2048), primary_key=True),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("resources", sa.JSON, nullable=False),
    sa.Column("granted_at", sa.Double, nullable=False),
    sa.Index("ix_consents_client_id", "client_id"),  # which clients still have a consent
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(255), primary_key=True),
    sa.Column("alg", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("public_jwk", sa.JSON, nullable=False),
    sa.Column("private_jwk_encrypted", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("activated_at", sa.Double, nullable=True),
    sa.Column("retired_at", sa.Double, nullable=True),
)

# The audit trail (authgate.audit): append-only, read newest first by time (and by target).
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.Double, nullable=False, index=True),
    sa.Column("method", sa.String(255), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(255), nullable=True),  # no index: no query can use it (migration 0012)
    sa.Column("username", sa.String(255), nullable=True),
    sa.Column("client_id", sa.String(2048), nullable=True),
    sa.Column("target", sa.String(2048), nullable=True, index=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Double, nullable=True),
    sa.Column("arguments", sa.Text, nullable=True),
)

# Proxy mode (authgate.idp.proxy): a local user's upstream identity and sealed upstream tokens.
upstream_tokens = sa.Table(
    "upstream_tokens",
    metadata,
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("username", sa.String(255), nullable=False),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("sealed_tokens", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# The HTTP gateway's MCP session bindings (authgate.store.sql.sessions): the session id only
# as SHA-256; a binding lives while used within idle_ttl or while a replica's stream lease runs.
session_bindings = sa.Table(
    "session_bindings",
    metadata,
    sa.Column("session_hash", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("client_id", sa.String(2048), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_seen", sa.Double, nullable=False, index=True),
    sa.Column("held_until", sa.Double, nullable=False),
)

# Sign-in and registration attempts per (limiter, SHA-256 of the key) and fixed window
# (`window_start`, whole Unix seconds), shared by every replica (`sql/ratelimits.py`).
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("limiter", sa.String(32), primary_key=True),
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("window_start", sa.BigInteger, primary_key=True, autoincrement=False, index=True),
    sa.Column("hits", sa.Integer, nullable=False),
)

# The connection timeline (authgate.oauth.attempts, sql/attempts.py): one row per OAuth flow
# attempt, capped in rows and purged by age; `steps` is a bit set of models.ATTEMPT_STEPS.
attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("attempt_id", sa.String(32), primary_key=True),
    sa.Column("started_at", sa.Double, nullable=False, index=True),
    sa.Column("updated_at", sa.Double, nullable=False, index=True),
    sa.Column("steps", sa.Integer, nullable=False),
    sa.Column("client_id", sa.String(512), nullable=True),
    sa.Column("client_name", sa.String(255), nullable=True),
    sa.Column("client_kind", sa.String(16), nullable=True),
    sa.Column("software", sa.String(255), nullable=True),
    sa.Column("flow_key", sa.String(64), nullable=True, index=True),
    sa.Column("family_key", sa.String(64), nullable=True, index=True),
    sa.Column("failed_step", sa.String(16), nullable=True),
    sa.Column("reason", sa.String(1024), nullable=True),
    sa.Column("fix", sa.String(1024), nullable=True),
    sa.Index("ix_attempts_client_id", "client_id", "started_at"),
)

# The `jti` of each accepted signed assertion (RFC 7523 §3: `private_key_jwt`), as SHA-256 of
# issuer and `jti`, per kind, until the assertion expires: first use wins on every replica.
used_jtis = sa.Table(
    "used_jtis",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("jti_hash", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
)

# Connections to third-party OAuth APIs (authgate.connections): per (user, provider) the sealed
# tokens; `version` and `renewing_until` make one refresh at a time across replicas.
connections = sa.Table(
    "connections",
    metadata,
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("provider", sa.String(64), primary_key=True),
    sa.Column("issuer", sa.String(2048), nullable=False),
    sa.Column("sealed_tokens", sa.LargeBinary, nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=True),
    sa.Column("renewing_until", sa.Double, nullable=False, server_default="0"),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Index("ix_connections_provider", "provider"),
)

# authgate's own client at each remote AS it registered at (DCR or CIMD), the secret sealed.
remote_clients = sa.Table(
    "remote_clients",
    metadata,
    sa.Column("issuer", sa.String(2048), primary_key=True),
    sa.Column("client_id", sa.String(2048), nullable=False),
    sa.Column("sealed_secret", sa.LargeBinary, nullable=True),
    sa.Column("auth_method", sa.String(32), nullable=False),
    sa.Column("how", sa.String(16), nullable=False),
    sa.Column("redirect_uri", sa.String(2048), nullable=False),
    sa.Column("registered_at", sa.Double, nullable=False),
)

# Connect links (/connect/{elicitation_id}) and, once opened, their pending authorization.
connect_requests = sa.Table(
    "connect_requests",
    metadata,
    sa.Column("elicitation_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("client_id", sa.String(2048), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    sa.Column("state_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("session_hash", sa.String(64), nullable=True),
    sa.Column("sealed_pending", sa.LargeBinary, nullable=True),
    sa.Column("completed_at", sa.Double, nullable=True),
)

__all__ = [
    "attempts",
    "audit_events",
    "authorization_codes",
    "clients",
    "connect_requests",
    "connections",
    "consents",
    "metadata",
    "rate_limits",
    "refresh_families",
    "refresh_tokens",
    "remote_clients",
    "session_bindings",
    "signing_keys",
    "upstream_tokens",
    "used_jtis",
    "users",
]
