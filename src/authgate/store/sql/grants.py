"""`SqlGrants`: authorization codes, refresh-token families and consents on a `SqlDatabase`.

Races between replicas are settled by the database, never by a read-then-write in Python:
conditional UPDATEs whose row count says who won (code redemption, refresh rotation,
revocation).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from authgate.errors import StoreError
from authgate.store.models import (
    AuthorizationCode,
    CodeRedemption,
    Consent,
    LiveGrant,
    RefreshFamily,
    RefreshGrant,
    RefreshToken,
)
from authgate.store.sql import one_statement as one
from authgate.store.sql import rows
from authgate.store.sql.database import SqlDatabase, idempotent
from authgate.store.sql.one_statement import CIMD_PREFIXES, CLIENTS, CODES, CONSENTS, FAMILIES, TOKENS, USERS
from authgate.store.sql.sqlite_prepared import prepared

# a grant: its family, whose user exists, and its client (absent for a CIMD client)
_LIVE_FROM = FAMILIES.join(USERS, USERS.c.user_id == FAMILIES.c.user_id).outerjoin(
    CLIENTS, CLIENTS.c.client_id == FAMILIES.c.client_id
)


def _expires() -> sa.ScalarSelect[float]:
    """Until when a family can refresh: its newest token's expiry (rotation renews it); a
    correlated subquery reading the family_id index only."""
    until = sa.select(sa.func.max(TOKENS.c.expires_at)).where(TOKENS.c.family_id == FAMILIES.c.family_id)
    return until.scalar_subquery()


def _live(expires: sa.ScalarSelect[float], now: float | None) -> tuple[sa.ColumnElement[bool], ...]:
    """A grant that still works: not revoked, its client stored or a CIMD URL, a token unexpired."""
    return (
        FAMILIES.c.revoked_at.is_(None),
        sa.or_(CLIENTS.c.client_id.is_not(None), *(FAMILIES.c.client_id.startswith(p) for p in CIMD_PREFIXES)),
        expires > (time.time() if now is None else now),
    )


class SqlGrants(SqlDatabase):
    """The grant half of `SqlStore` (`authgate.store.protocols.GrantStore`)."""

    @functools.cached_property
    def _family_unless_made(self) -> sa.Insert:
        """The code's family, unless a family of that id exists (ON CONFLICT of the backend)."""
        return prepared(self.upsert(FAMILIES).on_conflict_do_nothing())

    @functools.cached_property
    def _code_with_family(self) -> sa.Insert:
        return one.code_with_family(self.upsert)

    @functools.cached_property
    def _consent_if_first(self) -> sa.Select[Any]:
        return one.consent_if_first(self.upsert)

    # -- authorization codes ----------------------------------------------------------------

    async def save_code(self, code: AuthorizationCode) -> None:
        # The code's family is made with it, empty: a replay that beats the winning redemption
        # still finds it to revoke, and the winner's first token joins it revoked (RFC 9700 §4.5).
        family = RefreshFamily(
            family_id=code.family_id,
            client_id=code.client_id,
            user_id=code.user_id,
            scopes=code.scopes,
            resources=code.resources,
            created_at=code.created_at,
        )
        if self.dialect == "postgresql":  # one statement, without BEGIN and COMMIT
            async with self._tx(prepared=True, single=True) as conn:
                await conn.execute(self._code_with_family, {f"c_{k}": v for k, v in rows.code_values(code).items()})
            return
        async with self._tx(prepared=True) as conn:
            await conn.execute(self._family_unless_made, rows.family_values(family))
            await conn.execute(_INSERT_CODE, rows.code_values(code))

    async def consume_code(self, code_hash: str, now: float) -> CodeRedemption:
        # RFC 6749 §4.1.2: single use. The conditional UPDATE is the arbiter, returning the row
        # it consumed: in PostgreSQL the loser waits on the row lock and then matches nothing;
        # SQLite has one writer. Only a loser reads the row (a replay, or an unknown code): one
        # statement for the winner, without BEGIN and COMMIT on PostgreSQL (`single`).
        async with self._tx(prepared=True, single=True) as conn:
            row = (await conn.execute(_CONSUME_CODE, {"b_code_hash": code_hash, "consumed_at": now})).mappings().first()
            won = row is not None
            if row is None:
                row = (await conn.execute(_GET_CODE, {"code_hash": code_hash})).mappings().first()
        if row is None:
            return CodeRedemption(code=None)
        code = rows.to_code(row)
        if won:
            return CodeRedemption(code=code)
        return CodeRedemption(code=None, replayed=code)

    # -- refresh tokens ---------------------------------------------------------------------

    async def create_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        # The family exists already (made with its code), perhaps revoked by a replay that won
        # the race: the UPDATE leaves a revocation alone, so the first token is born revoked.
        # In PostgreSQL this UPDATE and a replay's revoke_family take turns on the row lock.
        values = rows.family_values(family)
        del values["family_id"], values["revoked_at"], values["revoked_reason"]
        if self.dialect == "postgresql":  # one statement (one.FILL_THEN_FIRST), when the family exists
            filled = {f"f_{k}": v for k, v in values.items()}
            async with self._tx(prepared=True, single=True) as conn:
                made = await conn.execute(
                    one.FILL_THEN_FIRST, {**filled, "f_family_id": family.family_id, **one.new_token(first)}
                )
            if made.rowcount == 1:
                return
        async with self._tx(prepared=True) as conn:
            made = await conn.execute(_FILL_FAMILY, {**values, "b_family_id": family.family_id})
            if made.rowcount != 1:  # a code saved by an older version, without its family
                await conn.execute(_INSERT_FAMILY, rows.family_values(family))
            await conn.execute(_INSERT_TOKEN, rows.token_values(first))

    async def get_family(self, family_id: str) -> RefreshFamily | None:
        row = await self._one(_GET_FAMILY, {"family_id": family_id})
        return rows.to_family(row) if row is not None else None

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        row = await self._one(_GET_TOKEN, {"token_hash": token_hash})
        return rows.to_token(row) if row is not None else None

    async def get_refresh_grant(self, token_hash: str) -> RefreshGrant | None:
        # one statement for what four reads answered (the token, its family, its liveness as in
        # `family_is_live`, the user): one snapshot, one round trip
        row = await self._one(one.REFRESH_GRANT, {"token_hash": token_hash})
        if row is None:
            return None
        token = rows.to_token(one.prefixed(row, "t_"))
        family = rows.to_family(one.prefixed(row, "f_"))
        user = rows.to_user(one.prefixed(row, "u_")) if row["u_user_id"] is not None else None
        return RefreshGrant(token=token, family=family, live=bool(row["live"]), user=user)

    async def rotate_refresh_token(self, old_hash: str, new: RefreshToken, successor: bytes, now: float) -> bool:
        if self.dialect == "postgresql":  # one statement: the new token only if the rotation won
            rotation = {"b_token_hash": old_hash, "b_rotated_at": now, "b_successor": successor}
            async with self._tx(prepared=True, single=True) as conn:
                issued = await conn.execute(one.ROTATE_THEN_NEXT, {**rotation, **one.new_token(new)})
            return bool(issued.rowcount == 1)
        async with self._tx(prepared=True) as conn:
            won = await conn.execute(_ROTATE, {"b_token_hash": old_hash, "rotated_at": now, "successor": successor})
            if won.rowcount != 1:
                # Nothing was written; leaving the block commits an empty transaction.
                return False
            await conn.execute(_INSERT_TOKEN, rows.token_values(new))
        return True

    @idempotent
    async def revoke_family(self, family_id: str, reason: str, now: float) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(revoke_where(FAMILIES.c.family_id == family_id, reason, now))
            return result.rowcount == 1

    @idempotent
    async def revoke_families(
        self, *, client_id: str | None = None, user_id: str | None = None, reason: str, now: float
    ) -> int:
        conditions = []
        if client_id is not None:
            conditions.append(FAMILIES.c.client_id == client_id)
        if user_id is not None:
            conditions.append(FAMILIES.c.user_id == user_id)
        if not conditions:
            # Refuse rather than revoke every grant on the server by omission.
            raise ValueError("revoke_families needs client_id or user_id")
        async with self._tx() as conn:
            result = await conn.execute(revoke_where(sa.and_(*conditions), reason, now))
            return result.rowcount

    async def family_is_live(self, family_id: str) -> bool:
        return await self._one(_LIVE_FAMILY, {"family_id": family_id}) is not None

    async def list_live_grants(
        self, *, user_id: str | None = None, client_id: str | None = None, limit: int = 1000, now: float | None = None
    ) -> list[LiveGrant]:
        # the newest token of a family (rotation renews the expiry) says when it was last used
        # and until when it can be; correlated subqueries read the family_id index only
        newest = sa.select(sa.func.max(TOKENS.c.issued_at)).where(TOKENS.c.family_id == FAMILIES.c.family_id)
        last_used = newest.scalar_subquery().label("last_used_at")
        expires = _expires()
        query = (
            sa.select(
                FAMILIES.c.family_id,
                FAMILIES.c.client_id,
                CLIENTS.c.metadata,
                FAMILIES.c.user_id,
                USERS.c.username,
                FAMILIES.c.scopes,
                FAMILIES.c.created_at,
                last_used,
                expires.label("expires_at"),
            )
            .select_from(_LIVE_FROM)
            .where(*_live(expires, now))
            .order_by(last_used.desc(), FAMILIES.c.family_id)
            .limit(max(0, limit))
        )
        if user_id is not None:
            query = query.where(FAMILIES.c.user_id == user_id)
        if client_id is not None:
            query = query.where(FAMILIES.c.client_id == client_id)
        return [rows.to_live_grant(row) for row in await self._all(query)]

    async def count_live_grants(self, client_ids: Sequence[str], *, now: float | None = None) -> dict[str, int]:
        if not client_ids:
            return {}
        query = (
            sa.select(FAMILIES.c.client_id, sa.func.count().label("n"))
            .select_from(_LIVE_FROM)
            .where(FAMILIES.c.client_id.in_(list(client_ids)), *_live(_expires(), now))
            .group_by(FAMILIES.c.client_id)
        )
        return {row["client_id"]: int(row["n"]) for row in await self._all(query)}

    @idempotent
    async def revoke_client_grants(self, client_id: str, reason: str, now: float) -> int:
        async with self._tx() as conn:
            revoked = await conn.execute(revoke_where(FAMILIES.c.client_id == client_id, reason, now))
            await conn.execute(sa.delete(CODES).where(CODES.c.client_id == client_id, CODES.c.consumed_at.is_(None)))
            await conn.execute(sa.delete(CONSENTS).where(CONSENTS.c.client_id == client_id))
            # no consent names it any more: back in the unverified pool (store.py `_unverified`)
            await conn.execute(sa.update(CLIENTS).where(CLIENTS.c.client_id == client_id).values(consented=False))
            return int(revoked.rowcount)

    async def purge_expired(self, before: float) -> int:
        # Rotated tokens stay until they expire: presenting one is how reuse is detected
        # (OAuth 2.1 §4.3.1), and that needs the row. A family goes with its last token and
        # code, created before `before` so that a family just made is never caught between
        # its insert and its first token.
        has_token = sa.exists().where(TOKENS.c.family_id == FAMILIES.c.family_id)
        has_code = sa.exists().where(CODES.c.family_id == FAMILIES.c.family_id)
        async with self._tx() as conn:
            codes = await conn.execute(sa.delete(CODES).where(CODES.c.expires_at < before))
            tokens = await conn.execute(sa.delete(TOKENS).where(TOKENS.c.expires_at < before))
            families = await conn.execute(
                sa.delete(FAMILIES).where(FAMILIES.c.created_at < before, ~has_token, ~has_code)
            )
        return int(codes.rowcount + tokens.rowcount + families.rowcount)

    # -- consents ---------------------------------------------------------------------------

    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        row = await self._one(_GET_CONSENT, {"user_id": user_id, "client_id": client_id})
        return rows.to_consent(row) if row is not None else None

    @idempotent
    async def save_consent(self, consent: Consent) -> None:
        # Two first consents may race to INSERT in PostgreSQL; the loser retries as an update.
        for attempt in range(3):
            try:
                await self._merge_consent(consent)
                return
            except StoreError as exc:
                if not isinstance(exc.__cause__, sa.exc.IntegrityError) or attempt == 2:
                    raise

    async def _merge_consent(self, consent: Consent) -> None:
        key = {"user_id": consent.user_id, "client_id": consent.client_id}
        if self.dialect == "postgresql":  # a first consent in one statement; else the merge below
            first = {
                "k_user_id": consent.user_id,
                "k_client_id": consent.client_id,
                "k_scopes": sorted(set(consent.scopes)),
                "k_resources": sorted(set(consent.resources)),
                "k_granted_at": consent.granted_at,
            }
            async with self._tx(prepared=True, single=True) as conn:
                if await conn.scalar(self._consent_if_first, first):
                    return
        async with self._tx(prepared=True) as conn:
            old = (await conn.execute(_CONSENT_FOR_UPDATE, key)).mappings().first()
            scopes = set(consent.scopes) | set(old["scopes"] if old else ())
            resources = set(consent.resources) | set(old["resources"] if old else ())
            values = {
                "scopes": sorted(scopes),
                "resources": sorted(resources),
                "granted_at": consent.granted_at,
            }
            if old is None:
                await conn.execute(_INSERT_CONSENT, {**key, **values})
                # the client leaves the unverified pool (store.py `_unverified`)
                await conn.execute(_CONSENTED, {"b_client_id": consent.client_id})
            else:
                await conn.execute(
                    _UPDATE_CONSENT, {**values, "b_user_id": key["user_id"], "b_client_id": key["client_id"]}
                )


def revoke_where(condition: sa.ColumnElement[bool], reason: str, now: float) -> sa.Update:
    """Revoke the matching families that are still live (revocation is never overwritten)."""
    return (
        sa.update(FAMILIES)
        .where(condition, FAMILIES.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


# The statements of the OAuth flow, built once: building one and its cache key costs SQLAlchemy
# more than running it (~45 µs a statement, measured: docs/benchmarks.md, "OAuth flows"). Names
# of the WHERE clause's parameters start with b_ when an UPDATE sets the column of that name.
_GET_CODE = prepared(sa.select(CODES).where(CODES.c.code_hash == sa.bindparam("code_hash")))
_INSERT_CODE = prepared(sa.insert(CODES))
_CONSUME_CODE = prepared(
    sa.update(CODES)
    .where(CODES.c.code_hash == sa.bindparam("b_code_hash"), CODES.c.consumed_at.is_(None))
    .returning(*CODES.c)
)
_GET_FAMILY = prepared(sa.select(FAMILIES).where(FAMILIES.c.family_id == sa.bindparam("family_id")))
_INSERT_FAMILY = prepared(sa.insert(FAMILIES))
_FILL_FAMILY = prepared(sa.update(FAMILIES).where(FAMILIES.c.family_id == sa.bindparam("b_family_id")))
_GET_TOKEN = prepared(sa.select(TOKENS).where(TOKENS.c.token_hash == sa.bindparam("token_hash")))
_INSERT_TOKEN = prepared(sa.insert(TOKENS))
_ROTATE = prepared(
    sa.update(TOKENS).where(TOKENS.c.token_hash == sa.bindparam("b_token_hash"), TOKENS.c.rotated_at.is_(None))
)
# live: not revoked, its user exists, and its client is stored or a CIMD document
_LIVE_FAMILY = prepared(
    sa.select(sa.literal(1))
    .select_from(FAMILIES.join(USERS, USERS.c.user_id == FAMILIES.c.user_id))
    .where(FAMILIES.c.family_id == sa.bindparam("family_id"), one.family_granting())
)
_CONSENT_KEY = (CONSENTS.c.user_id == sa.bindparam("user_id"), CONSENTS.c.client_id == sa.bindparam("client_id"))
_GET_CONSENT = prepared(sa.select(CONSENTS).where(*_CONSENT_KEY))
_CONSENT_FOR_UPDATE = _GET_CONSENT.with_for_update()
_INSERT_CONSENT = prepared(sa.insert(CONSENTS))
_UPDATE_CONSENT = prepared(
    sa.update(CONSENTS).where(
        CONSENTS.c.user_id == sa.bindparam("b_user_id"), CONSENTS.c.client_id == sa.bindparam("b_client_id")
    )
)
_CONSENTED = prepared(
    sa.update(CLIENTS)
    .where(CLIENTS.c.client_id == sa.bindparam("b_client_id"), CLIENTS.c.consented == sa.false())
    .values(consented=True)
)
