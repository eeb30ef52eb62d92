"""The rows of `authgate users list` and `authgate keys list`, through the one printer
(`output.py`): never a password hash, never a private key. Users are read a page at a time
(`--limit`, newest first) with a count, never all of them."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from authgate.cli.output import Column, iso, print_more, print_rows, printable
from authgate.store.models import SigningKey, User
from authgate.store.protocols import UserStore

USER_COLUMNS = (
    Column("username", "USER"),
    Column("user_id", "ID"),
    Column("created", "CREATED"),
    Column("roles", "ROLES"),
)
KEY_COLUMNS = (
    Column("kid", "KEY ID"),
    Column("state", "STATE"),
    Column("alg", "ALG"),
    Column("created", "CREATED"),
    Column("activated", "ACTIVATED"),
    Column("retired", "RETIRED"),
)
# the order `keys list` shows them in (all three states are published in the JWKS)
KEY_STATES = {"active": 0, "next": 1, "retired": 2}


def print_users(users: Iterable[User], *, as_json: bool) -> None:
    rows = [
        {"username": u.username, "user_id": u.user_id, "created": iso(u.created_at), "roles": list(u.roles)}
        for u in users
    ]
    print_rows(rows, USER_COLUMNS, as_json=as_json)


async def list_users(store: UserStore, *, limit: int, as_json: bool) -> None:
    """The newest `limit` users, then how many more there are (on stderr)."""
    total = await store.count_users()
    users = await store.list_users(limit=limit)
    print_users(users, as_json=as_json)
    print_more(total - len(users), "users", limit)


def print_keys(keys: Iterable[SigningKey], *, as_json: bool) -> None:
    """Active first, then next (published, signs after the next rotation), then retired
    (published until the tokens it signed have expired)."""
    ordered = sorted(keys, key=lambda k: (KEY_STATES.get(k.state, 3), -k.created_at))
    rows = [
        {
            "kid": k.kid,
            "state": k.state,
            "alg": k.alg,
            "created": iso(k.created_at),
            "activated": iso(k.activated_at),
            "retired": iso(k.retired_at),
        }
        for k in ordered
    ]
    print_rows(rows, KEY_COLUMNS, as_json=as_json)


async def user_id_of(users: UserStore, name: str) -> str | None:
    """The user id of a username, or of a user id given as is (a proxy-mode user's `iss|sub`);
    None, said on stderr, when there is no such user."""
    user = await users.get_user_by_name(name) or await users.get_user(name)
    if user is None:
        print(f"authgate: no user {printable(name)!r} (`authgate users list` lists them)", file=sys.stderr)
        return None
    return user.user_id
