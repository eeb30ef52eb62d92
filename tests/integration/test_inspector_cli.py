"""A real MCP client completes its own OAuth flow against `authgate serve`.

MCP Inspector 2.12.0 (`tests/node`, pinned in package-lock.json) in `--cli` mode: on the 401
from /mcp it discovers the protected-resource and authorization-server metadata, registers
itself (RFC 7591), opens the authorization URL (PKCE S256, `resource`) in "a browser" and
waits on its loopback callback for `code`/`state`/`iss` (RFC 9207), exchanges the code and
retries `tools/list` with the access token.

The browser is `browser_agent.py`: the Inspector opens URLs with the `open` package's
bundled `xdg-open`, which with no desktop session runs `$BROWSER <url>` (detached, stdio
discarded), and it only does so non-interactively when `MCP_AUTO_OPEN_ENABLED=true`. Each run
gets a fresh HOME, because the Inspector caches client registrations and tokens there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.inspector import DESKTOP_VARS, INSPECTOR, run_inspector
from support.needs import require_node_files

pytestmark = pytest.mark.node

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NODE_DIR = REPO / "tests" / "node"
INSPECTOR_VERSION = "2.12.0"
CLI_TIMEOUT = 120.0


def _require_inspector() -> None:
    require_node_files(INSPECTOR)


@pytest.fixture(autouse=True)
def _needs_inspector() -> None:
    """Checked before any server starts (autouse fixtures are set up first)."""
    _require_inspector()


def _browser_wrapper(tmp_path: Path) -> Path:
    """A `$BROWSER` executable. xdg-open splits BROWSER on ':' and word-splits the command,
    so its path must hold neither."""
    wrapper = tmp_path / "browser.sh"
    assert not any(c in str(wrapper) for c in ": \t"), f"unusable BROWSER path {wrapper}"
    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{HERE / 'browser_agent.py'}' \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def _inspector_env(home: Path, browser: Path, browser_log: Path, server: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DESKTOP_VARS}
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            # No OS keychain on a headless machine: keep secrets in $HOME/.mcp-inspector.
            "MCP_INSPECTOR_SECRET_STORE": "file",
            "MCP_AUTO_OPEN_ENABLED": "true",
            "BROWSER": str(browser),
            "NO_COLOR": "1",
            "AUTHGATE_TEST_USER": server.username,
            "AUTHGATE_TEST_PASSWORD": server.password,
            "AUTHGATE_TEST_DECISION": "allow",
            "AUTHGATE_BROWSER_LOG": str(browser_log),
        }
    )
    return env


def _report(done: subprocess.CompletedProcess[str], browser_log: Path) -> str:
    blog = browser_log.read_text(errors="replace") if browser_log.exists() else "(browser never ran)"
    return (
        f"exit {done.returncode}\n--- stdout ---\n{done.stdout[-8000:]}\n"
        f"--- stderr ---\n{done.stderr[-8000:]}\n--- browser agent ---\n{blog}"
    )


def _tool_names(stdout: str) -> list[str]:
    """`--format json` prints one object: {"result": {"tools": [...]}}."""
    doc = json.loads(stdout)
    result = doc.get("result", doc)
    return [t["name"] for t in result.get("tools", [])]


def test_inspector_version_is_pinned() -> None:
    manifest = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "inspector" / "package.json"
    assert json.loads(manifest.read_text())["version"] == INSPECTOR_VERSION


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_cli_oauth_then_tools_list(era: str, authgate: Any, tmp_path: Path, free_port: int) -> None:
    home = tmp_path / f"home-{era}"
    home.mkdir()
    browser_log = tmp_path / "browser.log"
    env = _inspector_env(home, _browser_wrapper(tmp_path), browser_log, authgate)
    callback = f"http://127.0.0.1:{free_port}/oauth/callback"
    args = [
        "--method",
        "tools/list",
        "--transport",
        "http",
        "--server-url",
        authgate.mcp_url,
        "--callback-url",
        callback,
        "--protocol-era",
        era,
        "--format",
        "json",
    ]

    done = run_inspector(args, env, tmp_path, CLI_TIMEOUT)
    assert done.returncode == 0, _report(done, browser_log)
    assert "whoami" in _tool_names(done.stdout), _report(done, browser_log)
    # The tools came after a real sign-in through our pages, not a lucky unauthenticated call.
    blog = browser_log.read_text()
    assert "callback answered 200" in blog, _report(done, browser_log)

    # Second run, same HOME: the stored token (or a refresh) is enough, no browser needed.
    env["BROWSER"] = "/bin/false"
    again = run_inspector([*args, "--stored-auth-only"], env, tmp_path, CLI_TIMEOUT)
    assert again.returncode == 0, _report(again, browser_log)
    assert "whoami" in _tool_names(again.stdout), _report(again, browser_log)


def test_inspector_cli_queries_the_built_in_knowledge_base(authgate: Any, tmp_path: Path, free_port: int) -> None:
    """Issue 3, done-when 7: after its own OAuth flow, the Inspector CLI calls
    `query_knowledge_base` on what `authgate serve` protects by default."""
    home = tmp_path / "home"
    home.mkdir()
    browser_log = tmp_path / "browser.log"
    env = _inspector_env(home, _browser_wrapper(tmp_path), browser_log, authgate)
    args = [
        "--method",
        "tools/call",
        "--tool-name",
        "query_knowledge_base",
        "--tool-args-json",
        json.dumps({"knowledge_base_id": "authgate-docs", "query": "connect ChatGPT", "top_k": 3}),
        "--transport",
        "http",
        "--server-url",
        authgate.mcp_url,
        "--callback-url",
        f"http://127.0.0.1:{free_port}/oauth/callback",
        "--format",
        "json",
    ]
    done = run_inspector(args, env, tmp_path, CLI_TIMEOUT)
    assert done.returncode == 0, _report(done, browser_log)
    result = json.loads(done.stdout)
    result = result.get("result", result)
    assert not result.get("isError"), _report(done, browser_log)
    passages = result["structuredContent"]["results"]
    assert passages and "chatgpt" in json.dumps(passages[0]).lower(), _report(done, browser_log)
    assert "callback answered 200" in browser_log.read_text()
