"""`authgate attempts`: the connection timeline — each OAuth flow attempt as one story (which
client, the steps it reached, the first failure with its reason and its fix), newest first.

    authgate attempts [--since 1h] [--client CLIENT] [--failed] [--limit N] [--json]

What is recorded and why it holds no secret: `authgate.oauth.attempts`. Not called
`connections`: that word is for users' third-party connections.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict
from typing import Any

from authgate.cli.audit_cmd import parse_since
from authgate.cli.output import Column, add_json_flag, iso, print_rows
from authgate.cli.settings_flags import add_setting_flags, setting_overrides
from authgate.config.settings import load_settings
from authgate.store.models import Attempt

COLUMNS = (
    Column("time", "STARTED"),
    Column("client", "CLIENT", width=40),
    Column("client_kind", "KIND"),
    Column("reached", "STEPS REACHED", width=64),
    Column("failed_step", "FAILED AT"),
    Column("reason", "REASON", width=120),
    Column("fix", "FIX", width=120),
)


def _row(a: Attempt) -> dict[str, Any]:
    client = a.client_name or a.client_id or "(unknown)"
    if a.client_name and a.client_id and a.client_id != a.client_name:
        client = f"{a.client_name} ({a.client_id})"
    return {
        **asdict(a),
        "time": iso(a.started_at),
        "updated": iso(a.updated_at),
        "client": client,
        "reached": " > ".join(a.steps) if a.steps else None,
    }


async def _read(args: argparse.Namespace) -> list[Attempt]:
    from authgate.server.runtime import with_store

    settings = load_settings(args.config, **setting_overrides(args))
    found: list[Attempt] = []

    async def run(stores: Any) -> int:
        found.extend(
            await stores.attempts.list_attempts(
                since=parse_since(args.since), client_id=args.client, failed_only=args.failed, limit=args.limit
            )
        )
        return 0

    await with_store(settings, run)
    return found


def cmd_attempts(args: argparse.Namespace) -> int:
    attempts = asyncio.run(_read(args))
    empty = f"no {'failed ' if args.failed else ''}connection attempts since {args.since}"
    print_rows([_row(a) for a in attempts], COLUMNS, as_json=args.json, empty=empty)
    return 0


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("use a number between 1 and 10000")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `attempts` to the `authgate` parser."""
    p = sub.add_parser(
        "attempts",
        help="why did a connection fail? each OAuth flow attempt: client, steps reached, first failure and its fix",
    )
    p.add_argument("--since", default="24h", help="attempts started since then: 15m, 1h, 7d or an ISO date (24h)")
    p.add_argument("--client", help="only this client (its client_id, or its name as registered)")
    p.add_argument("--failed", action="store_true", help="only attempts that failed")
    p.add_argument("--limit", type=_limit, default=200, help="at most this many, newest first (200)")
    add_json_flag(p)
    add_setting_flags(p)
    p.set_defaults(func=cmd_attempts)
