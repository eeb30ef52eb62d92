"""`authgate clients …`: machine clients made by the operator (`add`); the clients listed
(`list`: how it registered, its redirect hosts, last use, live grants and their users; the
newest `--limit` read a page at a time, never the whole table: registration is open) or shown
(`show`); what it holds revoked (`revoke`) or the client removed with it (`remove`);
registrations no user has consented to pruned now (`prune`, `--dry-run` to see which).

Open registration (/register) never creates a client_credentials client: a token without a
user behind it is only for a client an operator made here, bounded by `--scopes`. CIMD clients
(their id is the URL of their metadata document) are not stored: they are listed from the
grants they hold. Nothing here prints a client secret or its hash, nor a token.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from authgate.cli.machine_clients import add_machine_client
from authgate.cli.output import (
    Column,
    add_json_flag,
    add_limit_flag,
    iso,
    print_more,
    print_record,
    print_rows,
    printable,
)
from authgate.cli.settings_flags import add_setting_flags, setting_overrides
from authgate.config.settings import Settings, load_settings
from authgate.store.bundle import Stores
from authgate.store.models import Client, LiveGrant
from authgate.store.protocols import ClientStore

REVOKED = "revoked by the operator"
# a client's metadata fields `show` prints: never the secret nor its hash, nor an unknown field
SHOWN_METADATA = (
    "redirect_uris",
    "grant_types",
    "token_endpoint_auth_method",
    "scope",
    "client_uri",
    "software_id",
    "software_version",
    "subject",
)
MAX_GRANTS = 100_000  # read for the listing's counts: the CLI's bound, not the server's


def _minutes(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of minutes")
    return int(value)


def _hosts(uris: Sequence[str]) -> list[str]:
    return sorted({urlsplit(u).netloc for u in uris if urlsplit(u).netloc})


def _client_row(client: Client | None, client_id: str, grants: list[LiveGrant]) -> dict[str, Any]:
    """A stored client and its live grants; None: a CIMD client known only by its grants."""
    used = [g.last_used_at for g in grants]
    if client is None:
        created, last_used, meta = min(g.created_at for g in grants), max(used), {}
    else:
        created, last_used, meta = client.created_at, max([client.last_used_at, *used]), client.metadata
    return {
        "client_id": client_id,
        "name": client.name if client else client_id.split("://", 1)[-1],
        "registration": client.source if client else "cimd",
        # a CIMD client's redirect URIs are in its document, fetched when used and not kept
        "redirect_hosts": _hosts(client.redirect_uris) if client else None,
        "created": iso(created),
        "last_used": iso(last_used),
        "live_grants": len(grants),
        "users": sorted({g.username for g in grants}),
        "confidential": bool(client and client.client_secret_hash),
        **{k: meta.get(k) for k in ("grant_types", "scope")},
    }


def grant_row(g: LiveGrant) -> dict[str, Any]:
    """One live grant as `grants list` and `clients show` print it."""
    return {
        "grant_id": g.family_id,
        "client_id": g.client_id,
        "client_name": g.client_name,
        "user": g.username,
        "user_id": g.user_id,
        "scopes": list(g.scopes),
        "created": iso(g.created_at),
        "last_used": iso(g.last_used_at),
        "expires": iso(g.expires_at),
    }


CLIENT_COLUMNS = (
    Column("client_id", "CLIENT ID"),
    Column("name", "NAME", width=32),
    Column("registration", "REGISTERED BY"),
    Column("redirect_hosts", "REDIRECT HOSTS"),
    Column("created", "CREATED"),
    Column("last_used", "LAST USED"),
    Column("live_grants", "GRANTS"),
    Column("users", "USERS"),
)
GRANT_COLUMNS = (
    Column("grant_id", "GRANT ID"),
    Column("client_name", "CLIENT", width=32),
    Column("user", "USER"),
    Column("scopes", "SCOPES"),
    Column("created", "CREATED"),
    Column("last_used", "LAST USED"),
    Column("expires", "EXPIRES"),
)


async def _client_record(stores: Stores, client_id: str) -> tuple[dict[str, Any], list[LiveGrant]] | None:
    """One client (stored, or CIMD known by its grants) and its live grants; None: neither."""
    client = await stores.clients.get_client(client_id)
    grants = await stores.grants.list_live_grants(client_id=client_id, limit=MAX_GRANTS)
    if client is None and not grants:
        return None
    row = _client_row(client, client_id, grants)
    meta = client.metadata if client else {}
    row.update({k: meta.get(k) for k in SHOWN_METADATA})
    return row, grants


async def _list(args: argparse.Namespace, stores: Stores) -> int:
    """The newest `--limit` stored clients (of `--source`), then the CIMD clients holding a live
    grant, cut at `--limit` in all; stderr says how many more there are."""
    source, limit = args.source, args.limit
    stored: list[Client] = []
    total = 0
    if source != "cimd":  # CIMD clients are not stored
        total = await stores.clients.count_clients(source=source)
        stored = await stores.clients.list_clients(limit=limit, source=source)
    held: dict[str, list[LiveGrant]] = defaultdict(list)
    for g in await stores.grants.list_live_grants(limit=MAX_GRANTS):
        held[g.client_id].append(g)
    rows = [_client_row(c, c.client_id, held.pop(c.client_id, [])) for c in stored]
    if source in (None, "cimd"):  # what is left: CIMD clients, and stored ones on no page read
        cimd = [(cid, grants) for cid, grants in sorted(held.items()) if _is_cimd(cid)]
        rows += [_client_row(None, cid, grants) for cid, grants in cimd]
        total += len(cimd)
    print_rows(rows[:limit], CLIENT_COLUMNS, as_json=args.json)
    print_more(total - min(len(rows), limit), "clients", limit)
    return 0


def _is_cimd(client_id: str) -> bool:
    """A CIMD client's id is the URL of its metadata document; a stored client's is a token."""
    return urlsplit(client_id).scheme in ("https", "http")


async def _show(args: argparse.Namespace, stores: Stores) -> int:
    found = await _client_record(stores, args.client_id)
    if found is None:
        print(f"authgate: no stored client and no live grant of {printable(args.client_id)!r}", file=sys.stderr)
        return 1
    row, live = found
    grants = [grant_row(g) for g in live]
    if args.json:
        print_rows([{**row, "grants": grants}], (), as_json=True)
        return 0
    fields = [c for c in CLIENT_COLUMNS if c.key not in ("redirect_hosts", "live_grants")]
    fields[3:3] = [Column(k, k.replace("_", " ").upper()) for k in SHOWN_METADATA]
    print_record(row, [*fields, Column("confidential", "CONFIDENTIAL")])
    print()
    print_rows(grants, GRANT_COLUMNS, as_json=False, empty="no live grant")
    return 0


async def _revoke(args: argparse.Namespace, settings: Settings, stores: Stores) -> int:
    client = await stores.clients.get_client(args.client_id)
    revoked = await stores.grants.revoke_client_grants(args.client_id, REVOKED, time.time())
    shown = printable(args.client_id)
    if client is None and not revoked:
        print(f"authgate: no stored client and no grant of {shown!r}", file=sys.stderr)
        return 1
    name = f" ({printable(client.name)})" if client else ""
    print(
        f"revoked {revoked} grant(s) of client {shown}{name}: its refresh tokens fail now, its access tokens "
        f"within token_cache_seconds ({settings.token_cache_seconds} s); its users are asked to consent again"
    )
    if client is not None and "client_credentials" in (client.metadata.get("grant_types") or []):
        # its tokens come from its secret, not from a grant: only removing it stops them
        print(f"authgate: {shown} is a machine client: `authgate clients remove {shown}` stops it", file=sys.stderr)
    elif client is not None:
        print(f"it stays registered: `authgate clients remove {shown}` removes it", file=sys.stderr)
    return 0


async def _remove(args: argparse.Namespace, store: ClientStore) -> int:
    client = await store.get_client(args.client_id)
    if client is None or not await store.delete_client(args.client_id):
        print(f"authgate: no stored client {printable(args.client_id)!r}", file=sys.stderr)
        return 1
    print(
        f"removed client {client.client_id} ({printable(client.name)}); its grants are revoked and its "
        "tokens stop working within token_cache_seconds"
    )
    return 0


async def _prune(args: argparse.Namespace, settings: Settings, stores: Stores) -> int:
    """Registrations nobody signed in with go now, not when the pool overflows or in 30 days."""
    now = time.time()
    unverified_since, unused_since = now - args.idle_minutes * 60, now - settings.client_idle_days * 86400
    store = stores.clients
    if args.dry_run:
        prunable = await store.prunable_clients(unverified_since=unverified_since, unused_since=unused_since, now=now)
        rows = [_client_row(c, c.client_id, []) for c in prunable]
        print_rows(rows, CLIENT_COLUMNS, as_json=args.json)
        if not args.json:
            print(f"{len(rows)} client(s) would be removed; nothing was (--dry-run)", file=sys.stderr)
        return 0
    unverified = await store.prune_unverified_clients(unverified_since)
    idle = await store.prune_clients(unused_since, now)
    print(
        f"removed {unverified} unverified client(s) (registered, never consented to by a user) unused for "
        f"{args.idle_minutes} minutes, and {idle} registered client(s) unused for {settings.client_idle_days} "
        "days (client_idle_days) with no live grant"
    )
    return 0


def cmd_clients(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, **setting_overrides(args))

    async def run(stores: Stores) -> int:
        command = args.clients_command
        if command == "add":
            return await add_machine_client(args, settings, stores.clients)
        if command == "list":
            return await _list(args, stores)
        if command == "show":
            return await _show(args, stores)
        if command == "revoke":
            return await _revoke(args, settings, stores)
        if command == "prune":
            return await _prune(args, settings, stores)
        return await _remove(args, stores.clients)

    from authgate.server.runtime import with_store

    return asyncio.run(with_store(settings, run))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `clients` to the `authgate` parser."""
    clients = sub.add_parser("clients", help="OAuth clients: list, show, revoke, remove, prune; make machine clients")
    clients_sub = clients.add_subparsers(dest="clients_command", required=True)
    # `--scopes` here is the client's own allowance, so it replaces the `scopes` setting's flag
    add = clients_sub.add_parser(
        "add",
        conflict_handler="resolve",
        help="make a machine client: prints its secret once, or takes its public keys (--jwks)",
    )
    add.add_argument("name", help="what the client is, e.g. nightly-backup")
    add.add_argument(
        "--grant",
        required=True,
        choices=["client_credentials", "jwt-bearer"],
        help="the grant it uses; jwt-bearer: it exchanges ID-JAGs or workload assertions (docs/enterprise.md)",
    )
    add.add_argument("--subject", help="the `sub` of its tokens (default: its client_id)")
    keyed = add.add_mutually_exclusive_group()
    keyed.add_argument(
        "--jwks", metavar="FILE", help="authenticate with private_key_jwt: a JSON JWK Set of its public keys"
    )
    keyed.add_argument(
        "--jwks-uri", metavar="URL", help="authenticate with private_key_jwt: where its public keys are published"
    )
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
        "list",
        help="the clients, newest first: id, name, how it registered (dcr, cimd, operator, static), redirect hosts, "
        "created, last used, live grants, their users",
    )
    listing.add_argument(
        "--source", choices=["dcr", "cimd", "operator", "static"], help="only clients registered this way"
    )
    add_json_flag(listing)
    add_limit_flag(listing, "clients")
    add_setting_flags(listing)
    show = clients_sub.add_parser("show", help="one client: its registration and its live grants")
    show.add_argument("client_id")
    add_json_flag(show)
    add_setting_flags(show)
    revoke = clients_sub.add_parser(
        "revoke",
        help="revoke everything a client holds (refresh tokens fail now, access tokens within "
        "token_cache_seconds; its users consent again); the client stays registered",
    )
    revoke.add_argument("client_id")
    add_setting_flags(revoke)
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
    prune.add_argument("--dry-run", action="store_true", help="list the clients it would remove; remove none")
    add_json_flag(prune)
    add_setting_flags(prune)
    for parser in (add, listing, show, revoke, remove, prune):
        parser.set_defaults(func=cmd_clients)
