"""`authgate idp check ISSUER`: a preflight of an external identity provider."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from authgate._version import __version__
from authgate.idp.profiles import PROFILES

TIMEOUT = 10.0  # per request; what Claude allows for discovery and registration


def cmd_idp_check(args: argparse.Namespace) -> int:
    import httpx

    from authgate.idp.check import CheckOptions, render_text, run_check

    options = CheckOptions(
        issuer=args.issuer,
        profile=args.profile,
        register=args.register,
        client_id=args.client_id,
        client_secret=args.client_secret,
        resource=args.resource,
        scope=args.scope,
        scopes=tuple(s for s in args.scopes.replace(",", " ").split() if s),
        id_jag=args.id_jag,
    )

    async def run() -> Any:
        async with httpx.AsyncClient(
            timeout=TIMEOUT, follow_redirects=False, headers={"User-Agent": f"authgate/{__version__} (idp check)"}
        ) as http:
            return await run_check(options, http)

    report = asyncio.run(run())
    print(json.dumps(report.as_dict(), indent=2) if args.json else render_text(report))
    return 1 if report.failed else 0


def add_parser(sub: Any) -> None:
    idp = sub.add_parser("idp", help="external identity providers")
    idp_sub = idp.add_subparsers(dest="idp_command", required=True)
    check = idp_sub.add_parser(
        "check", help="probe an IdP the way authgate and MCP clients use it; name each problem and its fix"
    )
    check.add_argument("issuer", metavar="ISSUER", help="the IdP's issuer URL, exactly")
    check.add_argument("--profile", choices=list(PROFILES), default="generic", help="the IdP's profile")
    check.add_argument(
        "--register",
        action="store_true",
        help="make a real test registration (DCR), print its client id, delete it (RFC 7592)",
    )
    check.add_argument("--client-id", help="a client allowed client_credentials, to test `resource`")
    check.add_argument(
        "--client-secret",
        default=os.environ.get("AUTHGATE_IDP_CHECK_CLIENT_SECRET"),
        help="that client's secret (or env AUTHGATE_IDP_CHECK_CLIENT_SECRET, kept out of ps)",
    )
    check.add_argument("--resource", help="the MCP URL to ask a token for (RFC 8707)")
    check.add_argument("--scope", help="scope to ask for with client_credentials")
    check.add_argument(
        "--scopes",
        default="mcp",
        help="the scopes authgate will advertise (its `scopes` setting; comma- or space-separated), which "
        "must exist at the IdP; default: mcp",
    )
    check.add_argument(
        "--id-jag",
        action="store_true",
        help="the IdP is meant to issue ID-JAGs for authgate (enterprise_idps): check it offers them",
    )
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    check.set_defaults(func=cmd_idp_check)
