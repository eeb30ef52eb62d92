"""Gateway session bindings: which (subject, client) opened each upstream MCP session.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

Written out in full rather than imported from `tables.py` (see 0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "session_bindings",
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_seen", sa.Double, nullable=False),
        sa.Column("held_until", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("session_hash", name="pk_session_bindings"),
    )
    op.create_index("ix_session_bindings_last_seen", "session_bindings", ["last_seen"])


def downgrade() -> None:
    op.drop_index("ix_session_bindings_last_seen", table_name="session_bindings")
    op.drop_table("session_bindings")
