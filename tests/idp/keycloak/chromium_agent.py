#!/usr/bin/env python3
"""`$BROWSER` for the MCP Inspector CLI against Keycloak: a person in headless Chromium.

The Inspector (`--cli`, `MCP_AUTO_OPEN_ENABLED=true`) opens the authorization URL with `xdg-open`,
which with no desktop session runs `$BROWSER <url>` detached (see
tests/integration/test_inspector_cli.py). This opens it in Chromium (support.keycloak_login:
Keycloak's login form, then its consent page) and lets Chromium load the redirect to the
Inspector's loopback callback, so the Inspector itself receives the code, state and iss.

`python chromium_agent.py URL`; the account from KEYCLOAK_AGENT_USER / KEYCLOAK_AGENT_PASSWORD, the
callback from KEYCLOAK_AGENT_CALLBACK; progress appended to KEYCLOAK_AGENT_LOG. Exit 0 when the
callback was reached with a code.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: the `support` package

from support.keycloak_login import KeycloakBrowser  # noqa: E402


def main(argv: list[str]) -> int:
    log_path = os.environ.get("KEYCLOAK_AGENT_LOG")

    def log(line: str) -> None:
        if log_path:
            with open(log_path, "a", encoding="utf-8") as out:
                out.write(f"[chromium_agent {time.strftime('%H:%M:%S')}] {line}\n")

    if len(argv) != 2:
        log(f"usage: chromium_agent.py URL (got {argv[1:]})")
        return 2
    log(f"opening {argv[1]}")
    browser = KeycloakBrowser(
        os.environ["KEYCLOAK_AGENT_USER"],
        os.environ["KEYCLOAK_AGENT_PASSWORD"],
        os.environ["KEYCLOAK_AGENT_CALLBACK"],
        deliver=True,
    )
    try:
        params = browser.sign_in(argv[1])
    except Exception as exc:  # noqa: BLE001 - a test tool: report anything
        log(f"FAILED after pages {browser.pages}: {type(exc).__name__}: {exc}")
        return 1
    log(f"pages {browser.pages}")
    log(f"callback reached with {sorted(params)}" + (f" iss={params['iss']}" if "iss" in params else ""))
    return 0 if "code" in params else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
