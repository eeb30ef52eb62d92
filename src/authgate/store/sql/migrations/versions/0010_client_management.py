"""RFC 7592 registration access tokens, and assertion `jti`s used once across replicas.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

`clients.registration_token_hash`: the SHA-256 of a DCR client's registration access token
(RFC 7592 §3), which alone reads, replaces or deletes its registration; NULL for clients that
have none (operator-made, registered before this revision). CIMD clients are not stored.

`used_jtis`: the `jti` of each signed assertion accepted (RFC 7523 §3 item 7, `private_key_jwt`
client authentication), as SHA-256 of its issuer and `jti`, per `kind` of assertion, until the
assertion expires. The primary key makes "first use wins" one insert on every replica; rows
past `expires_at` are purged by housekeeping (an expired assertion is refused before its
`jti` is looked at, so a purged row can never let a replay through).

Written out in full rather than imported from `tables.py` (see 0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("registration_token_hash", sa.String(64), nullable=True))
    op.create_table(
        "used_jtis",
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("jti_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("kind", "jti_hash", name="pk_used_jtis"),
    )
    op.create_index("ix_used_jtis_expires_at", "used_jtis", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_used_jtis_expires_at", table_name="used_jtis")
    op.drop_table("used_jtis")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("registration_token_hash")
