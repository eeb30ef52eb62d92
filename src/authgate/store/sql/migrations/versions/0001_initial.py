"""Initial schema: clients, users, codes, refresh families and tokens, consents, keys.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full rather than imported from `tables.py`: a migration is a frozen record of
one step, and must not change when the current schema does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_used_at", sa.Double, nullable=False),
        sa.Column("client_secret_hash", sa.String(255), nullable=True),
        sa.Column("client_secret_expires_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("source", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_clients"),
    )
    op.create_index("ix_clients_last_used_at", "clients", ["last_used_at"])

    op.create_table(
        "users",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )

    op.create_table(
        "authorization_codes",
        sa.Column("code_hash", sa.String(128), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("resources", sa.JSON, nullable=False),
        sa.Column("code_challenge", sa.String(255), nullable=False),
        sa.Column("family_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("auth_time", sa.Double, nullable=False),
        sa.Column("consumed_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_authorization_codes"),
    )
    op.create_index("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"])

    op.create_table(
        "refresh_families",
        sa.Column("family_id", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("resources", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("revoked_at", sa.Double, nullable=True),
        sa.Column("revoked_reason", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("family_id", name="pk_refresh_families"),
    )
    op.create_index("ix_refresh_families_client_id", "refresh_families", ["client_id"])
    op.create_index("ix_refresh_families_user_id", "refresh_families", ["user_id"])

    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("family_id", sa.String(255), nullable=False),
        sa.Column("issued_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("rotated_at", sa.Double, nullable=True),
        sa.Column("successor", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_refresh_tokens"),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["refresh_families.family_id"],
            name="fk_refresh_tokens_family_id_refresh_families",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])

    op.create_table(
        "consents",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("resources", sa.JSON, nullable=False),
        sa.Column("granted_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "client_id", name="pk_consents"),
    )

    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(255), nullable=False),
        sa.Column("alg", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.JSON, nullable=False),
        sa.Column("private_jwk_encrypted", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("activated_at", sa.Double, nullable=True),
        sa.Column("retired_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_table("consents")
    op.drop_index("ix_refresh_tokens_family_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_index("ix_refresh_families_user_id", table_name="refresh_families")
    op.drop_index("ix_refresh_families_client_id", table_name="refresh_families")
    op.drop_table("refresh_families")
    op.drop_index("ix_authorization_codes_expires_at", table_name="authorization_codes")
    op.drop_table("authorization_codes")
    op.drop_table("users")
    op.drop_index("ix_clients_last_used_at", table_name="clients")
    op.drop_table("clients")
