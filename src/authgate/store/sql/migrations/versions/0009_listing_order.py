"""Clients and users are listed a page at a time, newest first, along an index.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

The admin page and `authgate clients list` / `users list` read one page (newest first, ties
by id) and a count, not the whole table: registration is open, so the clients table reaches
tens of thousands of rows where a client registers anew on each connection, or where anyone
registers in a loop. `ix_clients_created` and `ix_users_created` give that order, so a page
reads its rows and the index entries before them, and no sort of the table.

Written out in full rather than imported from `tables.py` (see 0001).
"""

from __future__ import annotations

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_clients_created", "clients", ["created_at", "client_id"])
    op.create_index("ix_users_created", "users", ["created_at", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_users_created", table_name="users")
    op.drop_index("ix_clients_created", table_name="clients")
