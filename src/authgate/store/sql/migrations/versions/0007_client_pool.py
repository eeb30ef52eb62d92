"""Clients remember whether a user consented to them, so the unverified pool is found by index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Until now a client was unverified while no consent named it, derived at each registration by
reading every client and every consent (`NOT IN (SELECT client_id FROM consents)`): 0.7 ms
at 1 000 consented clients, 10 ms at 10 000, 180 ms at 100 000 for the count alone, inside the
write transaction, so registration slowed with the server's age (docs/benchmarks.md, "OAuth
flows"). `consented` is that fact kept with the consents (set by `save_consent`, recomputed by
`remove_user` for the clients it leaves without one), and `ix_clients_pool` finds the pool's
members oldest first. Upgrading sets it from the consents there are. `ix_consents_client_id`
answers "has this client any consent left?" without reading every consent.

Written out in full rather than imported from `tables.py` (see 0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot add some columns in place; PostgreSQL just ALTERs
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("consented", sa.Boolean, nullable=False, server_default=sa.false()))
    clients = sa.table("clients", sa.column("client_id", sa.String), sa.column("consented", sa.Boolean))
    consents = sa.table("consents", sa.column("client_id", sa.String))
    op.execute(clients.update().where(clients.c.client_id.in_(sa.select(consents.c.client_id))).values(consented=True))
    op.create_index("ix_clients_pool", "clients", ["source", "consented", "created_at", "client_id"])
    op.create_index("ix_consents_client_id", "consents", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_consents_client_id", table_name="consents")
    op.drop_index("ix_clients_pool", table_name="clients")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("consented")
