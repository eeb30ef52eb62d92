"""The grant store's statements that do in one round trip what took several (issue 18).

A refresh's read (`REFRESH_GRANT`: the token, its family, their liveness as `family_is_live`
says it, the user) on both backends. On PostgreSQL only, a data-modifying `WITH` makes one
statement of what was a transaction of two or three, run by `grants.py` without BEGIN and
COMMIT (`SqlDatabase._tx(single=True)`): the rotation and the next token, the family made with
its code filled in and its first token, the code and its family, a first consent and its
client out of the unverified pool. SQLite keeps the transactions (it has no data-modifying
`WITH`, and a statement there costs a few µs, not a round trip).

Parameters are named apart from every column (`n_`, `f_`, `c_`, `k_`): the names given to a
statement are compiled as columns an UPDATE sets or an INSERT fills, a `WITH`'s statement's too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from authgate.store.models import RefreshToken
from authgate.store.sql import rows
from authgate.store.sql import tables as t
from authgate.store.sql.sqlite_prepared import prepared

__all__ = [
    "CIMD_PREFIXES",
    "CLIENTS",
    "CODES",
    "CONSENTS",
    "FAMILIES",
    "TOKENS",
    "USERS",
    "FILL_THEN_FIRST",
    "REFRESH_GRANT",
    "ROTATE_THEN_NEXT",
    "code_with_family",
    "consent_if_first",
    "family_granting",
    "new_token",
    "prefixed",
]

CODES = t.authorization_codes
FAMILIES = t.refresh_families
TOKENS = t.refresh_tokens
CLIENTS = t.clients
USERS = t.users
CONSENTS = t.consents

# CIMD clients (client_id is the metadata document's URL) are fetched, not stored.
CIMD_PREFIXES = ("https://", "http://")

_FROM_CODE = ("family_id", "client_id", "user_id", "scopes", "resources", "created_at")  # a code's family
_FILLED = ("client_id", "user_id", "scopes", "resources", "created_at")  # what `create_family` fills in

Upsert = Callable[[sa.Table], Any]  # `SqlDatabase.upsert`: the backend's INSERT with ON CONFLICT


def family_granting() -> sa.ColumnElement[bool]:
    """A family that still grants, but for its user (each statement joins that its own way):
    not revoked, and its client stored or a CIMD document (fetched, not stored)."""
    return sa.and_(
        FAMILIES.c.revoked_at.is_(None),
        sa.or_(
            sa.exists().where(CLIENTS.c.client_id == FAMILIES.c.client_id),
            *(FAMILIES.c.client_id.startswith(p) for p in CIMD_PREFIXES),
        ),
    )


def prefixed(row: Mapping[Any, Any], prefix: str) -> dict[str, Any]:
    """The columns of `row` labelled `prefix…`, by their own names (`REFRESH_GRANT`'s)."""
    return {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}


def new_token(token: RefreshToken) -> dict[str, Any]:
    """`_token_if`'s parameters (`n_<column>`)."""
    return {f"n_{k}": v for k, v in rows.token_values(token).items()}


def _token_if(cte: sa.CTE) -> sa.Insert:
    """A refresh token (`new_token`) inserted only if `cte`'s data-modifying statement returned
    a row, in one PostgreSQL statement (a WITH of an UPDATE … RETURNING)."""
    columns = list(TOKENS.c)
    values = sa.select(*(sa.bindparam(f"n_{c.name}", type_=c.type) for c in columns)).where(sa.exists(cte.select()))
    return sa.insert(TOKENS).from_select([c.name for c in columns], values).add_cte(cte)


def code_with_family(upsert: Upsert) -> sa.Insert:
    """PostgreSQL: the code and, unless it exists, its family, in one statement (a WITH of the
    family's INSERT … ON CONFLICT DO NOTHING); parameters `c_<column>` of the code."""
    params = {c.name: sa.bindparam(f"c_{c.name}", type_=c.type) for c in CODES.c}
    family = upsert(FAMILIES).values({k: params[k] for k in _FROM_CODE}).on_conflict_do_nothing()
    return prepared(sa.insert(CODES).values(params).add_cte(family.cte("family")))


def consent_if_first(upsert: Upsert) -> sa.Select[Any]:
    """PostgreSQL: a first consent inserted (ON CONFLICT DO NOTHING) and its client taken out of
    the unverified pool, in one statement returning 1 if it was the first, else 0 (the merge
    under FOR UPDATE then); parameters `k_<column>`."""
    params = {c.name: sa.bindparam(f"k_{c.name}", type_=c.type) for c in CONSENTS.c}
    made = upsert(CONSENTS).values(params).on_conflict_do_nothing().returning(CONSENTS.c.client_id)
    made_cte = made.cte("made")
    pooled = (
        sa.update(CLIENTS)
        .where(CLIENTS.c.client_id.in_(sa.select(made_cte.c.client_id)), CLIENTS.c.consented == sa.false())
        .values(consented=True)
        .returning(CLIENTS.c.client_id)
        .cte("pooled")
    )
    return prepared(sa.select(sa.func.count()).select_from(made_cte).add_cte(pooled))


# PostgreSQL: the rotation and the next token in one statement (rowcount 1: the rotation won)
ROTATE_THEN_NEXT = prepared(
    _token_if(
        sa.update(TOKENS)
        .where(TOKENS.c.token_hash == sa.bindparam("b_token_hash"), TOKENS.c.rotated_at.is_(None))
        .values(
            rotated_at=sa.bindparam("b_rotated_at", type_=TOKENS.c.rotated_at.type),
            successor=sa.bindparam("b_successor", type_=TOKENS.c.successor.type),
        )
        .returning(TOKENS.c.token_hash)
        .cte("rotated")
    )
)
# PostgreSQL: the family made with its code filled in and its first token, in one statement
# (rowcount 0: no family, a code saved by an older version: `create_family` then makes it)
FILL_THEN_FIRST = prepared(
    _token_if(
        sa.update(FAMILIES)
        .where(FAMILIES.c.family_id == sa.bindparam("f_family_id"))
        .values({c: sa.bindparam(f"f_{c}", type_=FAMILIES.c[c].type) for c in _FILLED})
        .returning(FAMILIES.c.family_id)
        .cte("filled")
    )
)
# a refresh's read: the token, its family, the user (if any), and the family's liveness
REFRESH_GRANT = prepared(
    sa.select(
        *(c.label(f"t_{c.name}") for c in TOKENS.c),
        *(c.label(f"f_{c.name}") for c in FAMILIES.c),
        *(c.label(f"u_{c.name}") for c in USERS.c),
        sa.and_(family_granting(), USERS.c.user_id.is_not(None)).label("live"),
    )
    .select_from(
        TOKENS.join(FAMILIES, FAMILIES.c.family_id == TOKENS.c.family_id).outerjoin(
            USERS, USERS.c.user_id == FAMILIES.c.user_id
        )
    )
    .where(TOKENS.c.token_hash == sa.bindparam("token_hash"))
)
