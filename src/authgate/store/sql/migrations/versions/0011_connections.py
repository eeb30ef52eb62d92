"""Connections to third-party OAuth APIs (issue 15): per-user tokens, authgate's own
registrations at remote authorization servers, and pending connect requests.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

`connections`: one row per (user, provider); the tokens sealed (AES-256-GCM under a key derived
from secret_key, the user and provider as associated data), the scopes and expiry in clear for
listings. `version` is the compare-and-swap counter: a refresh first claims the row
(`renewing_until`), so one replica spends the refresh token however many ask at once.

`remote_clients`: authgate's client at each remote AS it registered at (DCR, or CIMD), by
issuer: a restart or another replica reuses it instead of registering again; the secret sealed.

`connect_requests`: a connect link (`/connect/{elicitation_id}`) made for one user and client;
once opened, the authorization request's `state` (SHA-256), the sealed PKCE verifier and the
hash of the browser session that opened it. The callback consumes it (single use).

Written out in full rather than imported from `tables.py` (see 0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(2048), nullable=False),
        sa.Column("sealed_tokens", sa.LargeBinary, nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=True),
        sa.Column("renewing_until", sa.Double, nullable=False, server_default="0"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "provider", name="pk_connections"),
    )
    op.create_index("ix_connections_provider", "connections", ["provider"])
    op.create_table(
        "remote_clients",
        sa.Column("issuer", sa.String(2048), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary, nullable=True),
        sa.Column("auth_method", sa.String(32), nullable=False),
        sa.Column("how", sa.String(16), nullable=False),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("registered_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("issuer", name="pk_remote_clients"),
    )
    op.create_table(
        "connect_requests",
        sa.Column("elicitation_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("state_hash", sa.String(64), nullable=True),
        sa.Column("session_hash", sa.String(64), nullable=True),
        sa.Column("sealed_pending", sa.LargeBinary, nullable=True),
        sa.Column("completed_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("elicitation_id", name="pk_connect_requests"),
        sa.UniqueConstraint("state_hash", name="uq_connect_requests_state_hash"),
    )
    op.create_index("ix_connect_requests_expires_at", "connect_requests", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_connect_requests_expires_at", table_name="connect_requests")
    op.drop_table("connect_requests")
    op.drop_table("remote_clients")
    op.drop_index("ix_connections_provider", table_name="connections")
    op.drop_table("connections")
