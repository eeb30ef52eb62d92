"""The audit trail: one row per MCP operation the policy layer decided.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Written out in full rather than imported from `tables.py` (see 0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        # INTEGER PRIMARY KEY on SQLite (its rowid); BIGINT elsewhere: an audit trail outgrows 2^31
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("method", sa.String(255), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("username", sa.String(255), nullable=True),
        sa.Column("client_id", sa.String(2048), nullable=True),
        sa.Column("target", sa.String(2048), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("latency_ms", sa.Double, nullable=True),
        sa.Column("arguments", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_subject", "audit_events", ["subject"])
    op.create_index("ix_audit_events_target", "audit_events", ["target"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_target", table_name="audit_events")
    op.drop_index("ix_audit_events_subject", table_name="audit_events")
    op.drop_index("ix_audit_events_at", table_name="audit_events")
    op.drop_table("audit_events")
