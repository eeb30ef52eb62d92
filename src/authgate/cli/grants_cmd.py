"""`authgate grants …`: the grants that still work (`list`, of a user and/or a client) and their
revocation (`revoke`: one grant by its id, every grant of a user, or every grant of a client).

A grant is a refresh family: what one sign-in and consent gave one client for one user. Revoked,
its refresh tokens fail at once and its access tokens at the guard's next look at the store
(token_cache_seconds). Nothing here prints a token or a hash.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from authgate.cli.clients_cmd import GRANT_COLUMNS, REVOKED, grant_row
from authgate.cli.listings import user_id_of
from authgate.cli.output import Column, add_json_flag, iso, print_rows, printable
from authgate.cli.settings_flags import add_setting_flags, setting_overrides
from authgate.config.settings import Settings, load_settings
from authgate.store.bundle import Stores

MAX_LIMIT = 100_000


async def _list(args: argparse.Namespace, stores: Stores) -> int:
    user_id = await user_id_of(stores.users, args.user) if args.user else None
    if args.user and user_id is None:
        return 1
    grants = await stores.grants.list_live_grants(user_id=user_id, client_id=args.client, limit=args.limit)
    columns = (*GRANT_COLUMNS[:2], Column("client_id", "CLIENT ID"), *GRANT_COLUMNS[2:])
    print_rows([grant_row(g) for g in grants], columns, as_json=args.json)
    return 0


async def _revoke_one(stores: Stores, family_id: str) -> int:
    if await stores.grants.revoke_family(family_id, REVOKED, time.time()):
        print(f"revoked grant {printable(family_id)}")
        return 0
    family = await stores.grants.get_family(family_id)
    if family is None:
        print(f"authgate: no grant {printable(family_id)!r} (`authgate grants list` lists them)", file=sys.stderr)
        return 1
    print(f"grant {printable(family_id)} was already revoked at {iso(family.revoked_at)} ({family.revoked_reason})")
    return 0


async def _revoke(args: argparse.Namespace, settings: Settings, stores: Stores) -> int:
    if args.grant_id:
        done = await _revoke_one(stores, args.grant_id)
    elif args.user:
        user_id = await user_id_of(stores.users, args.user)
        if user_id is None:
            return 1
        count = await stores.grants.revoke_families(user_id=user_id, reason=REVOKED, now=time.time())
        print(f"revoked {count} grant(s) of user {printable(args.user)}")
        done = 0
    else:
        count = await stores.grants.revoke_client_grants(args.client, REVOKED, time.time())
        print(f"revoked {count} grant(s) of client {printable(args.client)}; its users are asked to consent again")
        done = 0
    if done == 0:
        print(
            f"their refresh tokens fail now, their access tokens within token_cache_seconds "
            f"({settings.token_cache_seconds} s)",
            file=sys.stderr,
        )
    return done


def cmd_grants(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, **setting_overrides(args))

    async def run(stores: Stores) -> int:
        if args.grants_command == "list":
            return await _list(args, stores)
        return await _revoke(args, settings, stores)

    from authgate.server.runtime import with_store

    return asyncio.run(with_store(settings, run))


def _limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(value)


class _DashedIds:
    """Grant ids are URL-safe base64 and one in 64 starts with `-`: a single-dash word that is
    no option of the parser is a value (`grants revoke -I-R2OKIu8…`), not an unknown option."""

    _option_string_actions: dict[str, argparse.Action]

    def _parse_optional(self, arg_string: str) -> Any:
        if arg_string[:1] == "-" and arg_string[:2] != "--" and arg_string not in self._option_string_actions:
            return None  # argparse: a positional
        return super()._parse_optional(arg_string)  # type: ignore[misc]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `grants` to the `authgate` parser."""
    grants = sub.add_parser("grants", help="what users granted clients: list the live grants, revoke them")
    parser_class = type("GrantsParser", (_DashedIds, type(grants)), {})  # keeps the CLI's own parser class
    grants_sub: argparse._SubParsersAction[argparse.ArgumentParser] = grants.add_subparsers(
        dest="grants_command", required=True, parser_class=parser_class
    )
    listing = grants_sub.add_parser(
        "list", help="the grants that still work: id, client, user, scopes, created, last used, expires"
    )
    listing.add_argument("--user", metavar="USER", help="only this user's (a username or a user id)")
    listing.add_argument("--client", metavar="CLIENT_ID", help="only this client's")
    listing.add_argument(
        "--limit", type=_limit, default=1000, metavar="N", help="at most N, most recently used first (default 1000)"
    )
    add_json_flag(listing)
    add_setting_flags(listing)
    revoke = grants_sub.add_parser(
        "revoke",
        help="revoke one grant, or every grant of a user or of a client: refresh tokens fail now, "
        "access tokens within token_cache_seconds",
    )
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("grant_id", nargs="?", metavar="GRANT_ID", help="the grant (`grants list` shows ids)")
    which.add_argument("--user", metavar="USER", help="every grant of this user (a username or a user id)")
    which.add_argument("--client", metavar="CLIENT_ID", help="every grant of this client; its users consent again")
    add_setting_flags(revoke)
    for parser in (listing, revoke):
        parser.set_defaults(func=cmd_grants)
