"""The audit trail's `subject` index goes: no query used it, and every row paid for it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

`authgate audit --subject X` (store/sql/audit.py) asks for `subject = X OR username = X`,
newest first: with no index on `username` neither SQLite nor PostgreSQL can use the one on
`subject` for that OR, so both read along `ix_audit_events_at` (SQLite's query plan: SCAN
USING INDEX ix_audit_events_at). The index was only written: ~1.8 us more per row in the audit
writer thread's insert with varied subjects (SQLite, 256-row statements, 4.9 vs 3.1 us a row;
docs/benchmarks.md §2). `at` (time order, retention) and `target` stay.

Written out in full rather than imported from `tables.py` (see 0001).
"""

from __future__ import annotations

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_events_subject", table_name="audit_events")


def downgrade() -> None:
    op.create_index("ix_audit_events_subject", "audit_events", ["subject"])
