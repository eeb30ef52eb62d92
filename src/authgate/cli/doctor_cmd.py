"""`authgate doctor URL`: replay real MCP clients against a deployment, name the failing step."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from authgate.doctor.profiles import PROFILES, parse_host_map

if TYPE_CHECKING:
    from authgate.doctor.flow import DoctorOptions

_EPILOG = """exit status: 0 when no step failed (with --strict: and none warned), 1 otherwise,
2 for a usage error. See docs/doctor.md for every step and its fixes."""


def mcp_url(value: str) -> str:
    """An http(s) URL with a host (a usage error otherwise, before any request is made)."""
    parts = urlsplit(value.strip())
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http:// or https:// URL; give the MCP endpoint URL, e.g. https://mcp.example.com/mcp"
        )
    return value.strip()


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "doctor",
        help="replay ChatGPT, Claude, Claude Code, the Inspector and the SDK "
        "against an MCP server and name the failing step",
        epilog=_EPILOG,
    )
    p.add_argument("url", type=mcp_url, help="the MCP endpoint URL, exactly as users give it to clients")
    p.add_argument(
        "--client",
        action="append",
        choices=[*PROFILES, "all"],
        dest="clients",
        help="client profile to replay (repeatable; default: all)",
    )
    creds = p.add_mutually_exclusive_group()
    creds.add_argument("--token", help="use this access token instead of signing in")
    creds.add_argument("--user", help="sign in on the server's HTML forms as this user")
    creds.add_argument(
        "--interactive",
        action="store_true",
        help="print the authorization URL and wait for your browser on the loopback callback",
    )
    p.add_argument("--password-stdin", action="store_true", help="read --user's password from stdin")
    p.add_argument(
        "--cimd-host-map",
        action="append",
        default=[],
        metavar="HOST=BASE_URL",
        help="TESTING: serve a client's CIMD URL from a stand-in, e.g. chatgpt.com=https://127.0.0.1:8443 "
        "(repeatable); for a server that cannot reach chatgpt.com and claude.ai (docs/doctor.md)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.add_argument("--strict", action="store_true", help="exit non-zero on warnings too")
    p.add_argument(
        "--keep-clients",
        action="store_true",
        help="leave the clients it registered (by default it deletes them, RFC 7592, where the server allows)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds (default 10)")
    p.add_argument(
        "--interactive-timeout",
        type=float,
        default=300.0,
        help="how long --interactive waits for the browser, seconds (default 300)",
    )
    p.set_defaults(func=cmd_doctor)


def _password(args: argparse.Namespace) -> str | None:
    if not args.user:
        return None
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return getpass.getpass(f"Password for {args.user}: ")


def options_from_args(args: argparse.Namespace) -> DoctorOptions:
    from authgate.doctor.flow import DoctorOptions

    if args.password_stdin and not args.user:
        raise SystemExit("authgate doctor: --password-stdin needs --user NAME")
    try:
        host_map = parse_host_map(args.cimd_host_map)
    except ValueError as exc:
        raise SystemExit(f"authgate doctor: {exc}") from None
    return DoctorOptions(
        url=args.url,
        clients=tuple(args.clients or ("all",)),
        token=args.token,
        username=args.user,
        password=_password(args),
        interactive=args.interactive,
        cimd_host_map=host_map,
        timeout=args.timeout,
        interactive_timeout=args.interactive_timeout,
        strict=args.strict,
        keep_clients=args.keep_clients,
    )


def cmd_doctor(args: argparse.Namespace) -> int:
    try:
        return _doctor(options_from_args(args), as_json=args.json)
    except BrokenPipeError:  # `authgate doctor … | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _doctor(options: DoctorOptions, *, as_json: bool) -> int:
    from authgate.doctor.report import ProgressPrinter, render_json, summary
    from authgate.doctor.runner import run_doctor

    if as_json:
        report = asyncio.run(run_doctor(options))
        print(render_json(report, strict=options.strict))
        return report.exit_status(strict=options.strict)
    printer = ProgressPrinter(sys.stdout)
    printer.header(options.url)
    report = asyncio.run(run_doctor(options, on_client=printer.client, on_finding=printer.finding))
    print(summary(report, strict=options.strict), flush=True)
    return report.exit_status(strict=options.strict)
