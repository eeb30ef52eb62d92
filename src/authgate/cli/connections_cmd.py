"""`authgate connections …`: users' connections to third-party providers (`list`, of one user or
everyone's) and their revocation (`revoke --user U --provider P`: removed here, and its tokens
revoked at the provider's RFC 7009 endpoint when it has one). Nothing here prints a token.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from authgate.cli.listings import user_id_of
from authgate.cli.output import Column, add_json_flag, iso, print_rows, printable
from authgate.cli.settings_flags import add_setting_flags, setting_overrides
from authgate.config.settings import Settings, load_settings
from authgate.store.bundle import Stores

COLUMNS = (
    Column("user", "USER"),
    Column("provider", "PROVIDER"),
    Column("scopes", "SCOPES"),
    Column("expires", "TOKEN EXPIRES"),
    Column("refreshable", "REFRESH"),
    Column("connected", "CONNECTED"),
    Column("updated", "UPDATED"),
)


def connection_broker(settings: Settings, stores: Stores) -> Any:
    """The broker the CLI acts through (`aclose()` it after)."""
    from authgate.connections import ConnectionBroker
    from authgate.connections.upstream import broker_providers
    from authgate.server.runtime import load_secret

    return ConnectionBroker(
        broker_providers(settings),  # with the protected upstream's (connections/upstream.py)
        stores.connections,
        load_secret(settings),
        public_url=settings.urls.base,
        allow_loopback_http=settings.outbound_allow_loopback_http,
    )


async def _run(args: argparse.Namespace, settings: Settings, stores: Stores) -> int:
    user_id = await user_id_of(stores.users, args.user) if args.user else None
    if args.user and user_id is None:
        return 1
    broker = connection_broker(settings, stores)
    try:
        if args.connections_command == "list":
            found = await broker.list(user_id)
            names = {}
            for uid in {c.user_id for c in found}:
                user = await stores.users.get_user(uid)
                names[uid] = user.username if user else uid
            rows = [
                {
                    "user": names.get(c.user_id, c.user_id),
                    "user_id": c.user_id,
                    "provider": c.provider,
                    "issuer": c.issuer,
                    "scopes": list(c.scopes),
                    "expires": iso(c.expires_at),
                    "refreshable": c.refreshable,
                    "connected": iso(c.created_at),
                    "updated": iso(c.updated_at),
                }
                for c in found
            ]
            print_rows(rows, COLUMNS, as_json=args.json, empty=None if args.json else "no connections")
            return 0
        assert user_id is not None
        if await broker.revoke(user_id, args.provider):
            print(f"revoked the connection of {printable(args.user)} to {printable(args.provider)}")
            return 0
        print(f"authgate: {printable(args.user)} has no connection to {printable(args.provider)}", file=sys.stderr)
        return 1
    finally:
        await broker.aclose()


def cmd_connections(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, **setting_overrides(args))
    from authgate.server.runtime import with_store

    return asyncio.run(with_store(settings, lambda stores: _run(args, settings, stores)))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `connections` to the `authgate` parser."""
    connections = sub.add_parser(
        "connections", help="users' connections to third-party providers: list them, revoke one"
    )
    inner = connections.add_subparsers(dest="connections_command", required=True)
    listing = inner.add_parser("list", help="the connections: user, provider, scopes, token expiry, refreshable")
    listing.add_argument("--user", metavar="USER", help="only this user's (a username or a user id)")
    add_json_flag(listing)
    add_setting_flags(listing)
    revoke = inner.add_parser("revoke", help="remove a connection and revoke its tokens at the provider")
    revoke.add_argument("--user", metavar="USER", required=True, help="a username or a user id")
    revoke.add_argument("--provider", metavar="PROVIDER", required=True, help="the provider's name")
    add_setting_flags(revoke)
    for parser in (listing, revoke):
        parser.set_defaults(func=cmd_connections)
