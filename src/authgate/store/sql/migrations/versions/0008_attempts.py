"""The connection timeline: one row per OAuth flow attempt (authgate.oauth.attempts).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Bounded by the writer (at most `attempts_max_rows` rows, the oldest deleted with each insert
past it) and by housekeeping (rows older than `attempts_retention_hours`). `flow_key` and
`family_key` are SHA-256 values (of the client id and PKCE challenge, of the refresh family's
id) that find a flow's row from each step; `steps` is a bit set of the steps reached.

Written out in full rather than imported from `tables.py` (see 0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "attempts",
        sa.Column("attempt_id", sa.String(32), nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("client_id", sa.String(512), nullable=True),
        sa.Column("client_name", sa.String(255), nullable=True),
        sa.Column("client_kind", sa.String(16), nullable=True),
        sa.Column("software", sa.String(255), nullable=True),
        sa.Column("flow_key", sa.String(64), nullable=True),
        sa.Column("family_key", sa.String(64), nullable=True),
        sa.Column("failed_step", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(1024), nullable=True),
        sa.Column("fix", sa.String(1024), nullable=True),
        sa.PrimaryKeyConstraint("attempt_id", name="pk_attempts"),
    )
    op.create_index("ix_attempts_started_at", "attempts", ["started_at"])
    op.create_index("ix_attempts_updated_at", "attempts", ["updated_at"])
    op.create_index("ix_attempts_client_id", "attempts", ["client_id", "started_at"])
    op.create_index("ix_attempts_flow_key", "attempts", ["flow_key"])
    op.create_index("ix_attempts_family_key", "attempts", ["family_key"])


def downgrade() -> None:
    for name in ("family_key", "flow_key", "client_id", "updated_at", "started_at"):
        op.drop_index(f"ix_attempts_{name}", table_name="attempts")
    op.drop_table("attempts")
