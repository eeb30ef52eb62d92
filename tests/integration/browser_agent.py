#!/usr/bin/env python3
"""A scripted stand-in for a web browser, for CLI OAuth clients that open one.

MCP Inspector's ``--cli`` mode opens the authorization URL with ``xdg-open``, which (with no
desktop session) runs ``$BROWSER <url>``. Point ``BROWSER`` at a wrapper that runs this file
with the project's Python: ``python browser_agent.py <authorization-url>``.

It does what a user would do on authgate's pages (docs/http-contract.md), via
``headless.HeadlessUserAgent`` (cookies kept, CSRF double-submit honoured): sign in with
``AUTHGATE_TEST_USER`` / ``AUTHGATE_TEST_PASSWORD``, answer the consent page with
``AUTHGATE_TEST_DECISION`` (default ``allow``), then GET the authorization response — the
redirect to the client's loopback callback — so the client receives ``code``/``state``/``iss``.

``xdg-open`` is spawned detached with its stdio discarded and the Inspector does not wait
for it, so this runs the flow in the foreground. Progress goes to stderr and, when
``AUTHGATE_BROWSER_LOG`` names a file, is appended there too. Exit status 0 when the
callback answered below 400.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the `support` package

import httpx  # noqa: E402

from support.headless import AuthorizationResponse, HeadlessUserAgent  # noqa: E402


def deliver(
    authorization_url: str, username: str, password: str, *, decision: str = "allow", log=None
) -> tuple[AuthorizationResponse, httpx.Response]:
    """Run login + consent, then GET the client's redirect URI like a browser would."""
    with HeadlessUserAgent(timeout=30.0) as agent:
        result = agent.authorize(authorization_url, username, password, decision=decision)  # type: ignore[arg-type]
        if log:
            log(f"authorization response {result.status} -> {result.location}")
        callback = agent.http.get(result.location)
        if log:
            log(f"callback answered {callback.status_code}: {callback.text[:200]!r}")
        return result, callback


def main(argv: list[str]) -> int:
    log_path = os.environ.get("AUTHGATE_BROWSER_LOG")

    def log(msg: str) -> None:
        line = f"[browser_agent {time.strftime('%H:%M:%S')} pid={os.getpid()}] {msg}"
        try:
            print(line, file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass
        if log_path:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    if len(argv) < 2:
        log("usage: browser_agent.py <authorization-url>")
        return 2
    log(f"opening {argv[1]}")
    try:
        _, callback = deliver(
            argv[1],
            os.environ.get("AUTHGATE_TEST_USER", "alice"),
            os.environ.get("AUTHGATE_TEST_PASSWORD", ""),
            decision=os.environ.get("AUTHGATE_TEST_DECISION", "allow"),
            log=log,
        )
    except Exception as exc:  # noqa: BLE001 - a test tool: report anything
        log(f"FAILED: {type(exc).__name__}: {exc}")
        return 1
    return 0 if callback.status_code < 400 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
