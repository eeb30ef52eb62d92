"""Users get roles (which scopes they may grant) and a session version (sign-in cookies).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

`roles`: a JSON array of role names, looked up in the `user_role_scopes` setting. Upgrading
an existing database makes its earliest-created user `admin` (the one `authgate serve`
created at first start, or the first one an operator added), so the deployment keeps one
person who may grant every offered scope; every other existing user gets no role, so may
grant only the base `scopes` from now on (before, anyone who clicked Allow could grant any
offered scope: the hole this closes). Give them roles with `authgate users roles NAME ROLE…`.

`session_version`: sign-in cookies carry it; changing a password or removing a user bumps it,
so cookies issued before stop working on every replica. Existing cookies carry none, read as
0, so nobody is signed out by the upgrade itself.

Written out in full rather than imported from `tables.py` (see 0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot add or drop some columns in place; PostgreSQL just ALTERs
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("roles", sa.JSON, nullable=False, server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("session_version", sa.Integer, nullable=False, server_default="0"))
    users = sa.table(
        "users", sa.column("user_id", sa.String), sa.column("created_at", sa.Double), sa.column("roles", sa.JSON)
    )
    first = sa.select(users.c.user_id).order_by(users.c.created_at, users.c.user_id).limit(1)
    op.execute(users.update().where(users.c.user_id == first.scalar_subquery()).values(roles=["admin"]))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_version")
        batch.drop_column("roles")
