"""`authgate clients …`: machine clients made by the operator (`add`), and every stored client
listed (`list`) or removed with its grants (`remove`); registrations no user has consented to
pruned now (`prune`).

Open registration (/register) never creates a client_credentials client: a token without a
user behind it is only for a client an operator made here, bounded by `--scopes`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from datetime import UTC, datetime

from authgate.cli.settings_flags import add_setting_flags, setting_overrides
from authgate.config.settings import Settings, load_settings
from authgate.errors import ConfigError
from authgate.store.bundle import Stores
from authgate.store.protocols import ClientStore

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """DCR client names are chosen by anyone: never let one drive the operator's terminal."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def client_scopes(settings: Settings, values: list[str]) -> list[str]:
    """`--scopes "a b"`, `--scopes a,b` or repeated; each must be one the server offers."""
    from authgate.policy.model import offered_scopes

    wanted = list(dict.fromkeys(s for v in values for s in re.split(r"[\s,]+", v) if s))
    offered = offered_scopes(settings)
    if not wanted or (unknown := [s for s in wanted if s not in offered]):
        problem = "no scope given" if not wanted else f"{', '.join(unknown)} is not a scope this server offers"
        raise ConfigError(
            "--scopes",
            problem,
            f"use some of: {' '.join(offered)} (run with the settings of "
            "`authgate serve`; the policy's tool_scopes add scopes)",
        )
    return wanted


def _minutes(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of minutes")
    return int(value)


def _check_text(flag: str, value: str, limit: int) -> str:
    if not value.strip() or len(value) > limit or _UNPRINTABLE.search(value):
        raise ConfigError(
            flag,
            f"{value!r} is empty, longer than {limit} characters or holds control characters",
            "use a short printable name",
        )
    return value


async def _add(args: argparse.Namespace, settings: Settings, store: ClientStore) -> int:
    from authgate.oauth.registration import machine_client

    name = _check_text("NAME", args.name, 100)
    subject = _check_text("--subject", args.subject, 255) if args.subject is not None else None
    scopes = client_scopes(settings, args.client_scopes)
    client, secret = machine_client(name, scopes, subject, time.time())
    await store.add_client(client)  # outside max_clients: that cap bounds open registration
    print(f"client_id\t{client.client_id}\nclient_secret\t{secret}")
    print(
        f"added machine client {name!r} (scopes: {' '.join(scopes)}; subject: {client.metadata['subject']}). "
        "The secret is shown only this once: authgate keeps only its hash.\nGet a token: curl -u "
        f"CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials -d resource={settings.urls.resource} "
        f"{settings.urls.issuer}/token",
        file=sys.stderr,
    )
    return 0


async def _list(args: argparse.Namespace, store: ClientStore) -> int:
    for c in await store.list_clients():
        if args.source and c.source != args.source:
            continue
        grants = ",".join(c.metadata.get("grant_types") or ["authorization_code"])
        fields = [
            c.client_id,
            _printable(c.name)[:80],
            c.source,
            _when(c.created_at),
            _when(c.last_used_at),
            grants,
            _printable(str(c.metadata.get("scope") or "")),
        ]
        print("\t".join(_printable(f) for f in fields).rstrip())
    return 0


async def _remove(args: argparse.Namespace, store: ClientStore) -> int:
    client = await store.get_client(args.client_id)
    if client is None or not await store.delete_client(args.client_id):
        print(f"authgate: no stored client {_printable(args.client_id)!r}", file=sys.stderr)
        return 1
    print(
        f"removed client {client.client_id} ({_printable(client.name)}); its grants are revoked and its "
        "tokens stop working within token_cache_seconds"
    )
    return 0


async def _prune(args: argparse.Namespace, settings: Settings, store: ClientStore) -> int:
    """Registrations nobody signed in with go now, not when the pool overflows or in 30 days."""
    now = time.time()
    unverified = await store.prune_unverified_clients(now - args.idle_minutes * 60)
    idle = await store.prune_clients(now - settings.client_idle_days * 86400, now)
    print(
        f"removed {unverified} unverified client(s) (registered, never consented to by a user) unused for "
        f"{args.idle_minutes} minutes, and {idle} registered client(s) unused for {settings.client_idle_days} "
        "days (client_idle_days) with no live grant"
    )
    return 0


def cmd_clients(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, **setting_overrides(args))

    async def run(stores: Stores) -> int:
        store = stores.clients
        if args.clients_command == "add":
            return await _add(args, settings, store)
        if args.clients_command == "list":
            return await _list(args, store)
        if args.clients_command == "prune":
            return await _prune(args, settings, store)
        return await _remove(args, store)

    from authgate.server.runtime import with_store

    return asyncio.run(with_store(settings, run))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `clients` to the `authgate` parser."""
    clients = sub.add_parser("clients", help="OAuth clients: make machine clients, list, remove")
    clients_sub = clients.add_subparsers(dest="clients_command", required=True)
    # `--scopes` here is the client's own allowance, so it replaces the `scopes` setting's flag
    add = clients_sub.add_parser(
        "add", conflict_handler="resolve", help="make a machine client (client_credentials); prints its secret once"
    )
    add.add_argument("name", help="what the client is, e.g. nightly-backup")
    add.add_argument("--grant", required=True, choices=["client_credentials"], help="the grant it uses")
    add.add_argument("--subject", help="the `sub` of its tokens (default: its client_id)")
    add_setting_flags(add)
    add.add_argument(
        "--scopes",
        dest="client_scopes",
        action="append",
        required=True,
        metavar="SCOPES",
        help="the scopes its tokens may carry, space- or comma-separated; a token request "
        "gets only these (none asked: all of them)",
    )
    listing = clients_sub.add_parser(
        "list", help="every stored client: id, name, source, created, last used, grant types, scopes"
    )
    listing.add_argument("--source", choices=["dcr", "operator", "static"], help="only clients of this source")
    add_setting_flags(listing)
    remove = clients_sub.add_parser("remove", help="remove a client and revoke its grants")
    remove.add_argument("client_id")
    add_setting_flags(remove)
    prune = clients_sub.add_parser(
        "prune",
        help="remove idle unverified clients (registered, never consented "
        "to) now, and clients unused for client_idle_days; says how many",
    )
    prune.add_argument(
        "--idle-minutes",
        type=_minutes,
        default=60,
        metavar="N",
        help="unverified clients unused this long go (default 60; 0: every one)",
    )
    add_setting_flags(prune)
    for parser in (add, listing, remove, prune):
        parser.set_defaults(func=cmd_clients)
