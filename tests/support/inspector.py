"""The MCP Inspector CLI (npm, pinned in tests/node) as the tests run it: against authgate
(tests/integration/test_inspector_cli.py) and through Keycloak (tests/idp/keycloak)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

INSPECTOR = Path(__file__).resolve().parents[1] / "node" / "node_modules" / ".bin" / "mcp-inspector"

# Variables that would make xdg-open pick a desktop handler instead of $BROWSER.
DESKTOP_VARS = (
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XDG_CURRENT_DESKTOP",
    "XDG_SESSION_DESKTOP",
    "DESKTOP_SESSION",
    "KDE_FULL_SESSION",
    "GNOME_DESKTOP_SESSION_ID",
    "MATE_DESKTOP_SESSION_ID",
    "LXQT_SESSION_CONFIG",
    "DBUS_SESSION_BUS_ADDRESS",
)


def run_inspector(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """`mcp-inspector --cli ARGS`, bounded: a run past `timeout` fails the test with its output."""
    try:
        return subprocess.run(
            [str(INSPECTOR), "--cli", *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        pytest.fail(f"inspector did not finish within {timeout}s\nstdout:\n{out}\nstderr:\n{err}")


def whoami_of(stdout: str) -> dict[str, Any]:
    """`--format json` prints {"result": {"content": [{"type": "text", "text": WHOAMI-JSON}], ...}}."""
    result = json.loads(stdout)["result"]
    assert not result.get("isError"), result
    return dict(json.loads(result["content"][0]["text"]))
