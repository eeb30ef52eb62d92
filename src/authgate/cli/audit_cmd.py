"""`authgate audit`: read the audit trail (newest `--limit` events, oldest first)."""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from authgate.cli.output import Column, add_json_flag, print_rows
from authgate.cli.settings_flags import add_setting_flags, setting_overrides
from authgate.config.settings import load_settings
from authgate.errors import ConfigError
from authgate.store.models import AuditEvent

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """`15m`, `2h`, `7d` (ago), or an ISO 8601 date/time (UTC unless it names an offset)."""
    now = time.time() if now is None else now
    if match := _RELATIVE.fullmatch(text.strip()):
        return now - float(match[1]) * _UNIT_SECONDS[match[2]]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            "--since", f"{text!r} is neither a duration nor a date", "use e.g. 15m, 2h, 7d or 2026-11-23T10:00:00Z"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


COLUMNS = (
    Column("time", "TIME"),
    Column("decision", "DECISION"),
    Column("method", "METHOD"),
    Column("target", "TARGET"),
    Column("who", "WHO"),
    Column("client_id", "CLIENT"),
    Column("outcome", "OUTCOME"),
    Column("reason", "REASON", width=120),
)


def _row(e: AuditEvent) -> dict[str, Any]:
    """The event's fields (JSON: every one), with `time`, and for the table `who` and `outcome`."""
    outcome = f"{e.status} {e.latency_ms:.0f}ms" if e.status is not None and e.latency_ms is not None else None
    return {**asdict(e), "time": _iso(e.at), "who": e.username or e.subject or "(anonymous)", "outcome": outcome}


async def _read(args: argparse.Namespace) -> list[AuditEvent]:
    from authgate.server.runtime import open_store

    settings = load_settings(args.config, **setting_overrides(args))
    stores = open_store(settings)
    await stores.open()
    try:
        return await stores.audit.list_audit_events(
            since=parse_since(args.since) if args.since else None,
            subject=args.subject,
            target=args.tool,
            limit=args.limit,
        )
    finally:
        await stores.close()


def cmd_audit(args: argparse.Namespace) -> int:
    rows = [_row(event) for event in asyncio.run(_read(args))]
    if args.json:  # the event as stored, and its time in ISO 8601
        rows = [{k: v for k, v in row.items() if k not in ("who", "outcome")} for row in rows]
    print_rows(rows, COLUMNS, as_json=args.json)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit` to the `authgate` parser."""
    audit = sub.add_parser("audit", help="read the audit trail: who called which tool, and what was decided")
    audit.add_argument("--since", help="only events since then: 15m, 2h, 7d, or an ISO 8601 date/time")
    audit.add_argument("--subject", help="only events of this subject or username")
    audit.add_argument("--tool", help="only events about this tool (or prompt name, or resource URI)")
    audit.add_argument("--limit", type=int, default=100, help="at most this many (the newest); default 100")
    add_json_flag(audit)
    add_setting_flags(audit)
    audit.set_defaults(func=cmd_audit)
