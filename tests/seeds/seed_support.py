"""Running a docs/seeds page against the local stand-in IdP.

A seed page holds one ```toml block (authgate's configuration for the real IdP) and one
```bash block marked `<!-- seed-playbook -->` (its validation playbook). The tests:

* `page_block(page, "toml")` — the page's TOML, with the page's placeholders (the public URL,
  the IdP's issuer, the upstream's URL) replaced by the stand-ins' loopback URLs
  (`substitute`, which fails when a placeholder is missing, so a renamed placeholder cannot
  turn the substitution into a no-op);
* `SeedGate` — `authgate serve --config FILE` as a subprocess (tests/integration's
  `AuthgateServer`, no first user: external mode has no store), its port known before the
  IdP starts because the MCP URL is the IdP's audience;
* `run_playbook(block, env)` — the playbook as a bash script: each line ending in
  `# → TEXT` must print TEXT (after substitution), every command must succeed (`set -e`);
  `authgate` is the venv's;
* `sdk_sign_in_and_call` — the `mcp` SDK's OAuth client (DCR and PKCE at the IdP, signed in
  through oidc-provider's interaction shortcut) calling one tool through authgate;

Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from support.authgate_server import AuthgateServer
from support.idp_peers import IdpBrowser
from support.sdk_oauth import MemoryTokenStorage, public_client

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "docs" / "seeds"
VENV_BIN = Path(sys.executable).parent
REDIRECT_URI = "http://127.0.0.1:38973/oauth/callback"  # never listened on
FLOW_TIMEOUT = 60.0
PLAYBOOK_TIMEOUT = 120.0
EXPECT = " # → "


def page_text(name: str) -> str:
    return (SEEDS / name).read_text()


def page_block(name: str, lang: str, *, marker: str | None = None) -> str:
    """The one fenced block of `lang` in the page (after `<!-- marker -->` when given)."""
    text = page_text(name)
    if marker is not None:
        tag = f"<!-- {marker} -->"
        assert text.count(tag) == 1, f"{name}: expected one {tag}"
        text = text.split(tag, 1)[1]
        blocks = re.findall(rf"^```{lang}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)[:1]
    else:
        blocks = re.findall(rf"^```{lang}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"{name}: expected one ```{lang} block, found {len(blocks)}"
    return blocks[0]


def substitute(text: str, subs: dict[str, str]) -> str:
    for placeholder, value in subs.items():
        assert placeholder in text, f"placeholder {placeholder!r} not in the page's block"
        text = text.replace(placeholder, value)
    return text


class SeedGate:
    """`authgate serve --config authgate.toml` for one page, on a port chosen up front."""

    def __init__(self, workdir: Path, *, extra_env: dict[str, str] | None = None) -> None:
        self.config_path = workdir / "authgate.toml"
        self.server = AuthgateServer(workdir, extra_env=extra_env, serve_args=("--config", str(self.config_path)))
        # the page's public_url decides; the harness's env default would override the file
        del self.server.env["AUTHGATE_PUBLIC_URL"]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def mcp_url(self) -> str:
        return self.server.mcp_url

    def start(self, toml: str) -> None:
        self.config_path.write_text(toml)
        self.server.start()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.server.cli(*args, "--config", str(self.config_path))

    def stop(self) -> None:
        self.server.stop()


def run_playbook(block: str, subs: dict[str, str], env: dict[str, str], cwd: Path) -> str:
    """Run the page's playbook; every `cmd  # → TEXT` line must print TEXT. Returns the output."""
    lines = ["set -euo pipefail"]
    for line in substitute(block, subs).splitlines():
        if EXPECT in line:
            command, expected = line.split(EXPECT, 1)
            lines.append(f'out=$({command.strip()}) || {{ echo "$out"; exit 1; }}')
            lines.append('printf "%s\\n" "$out"')
            lines.append(
                f'[[ "$out" == *{_bash_quote(expected.strip())}* ]] || '
                f"{{ echo 'expected: '{_bash_quote(expected.strip())} >&2; exit 1; }}"
            )
        else:
            lines.append(line)
    script = "\n".join(lines) + "\n"
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    run_env.update(env)
    run_env["PATH"] = f"{VENV_BIN}{os.pathsep}{run_env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-c", script], env=run_env, cwd=cwd, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT
    )
    assert done.returncode == 0, (
        f"playbook failed ({done.returncode})\n{script}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return done.stdout


def _bash_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


# -- clients ---------------------------------------------------------------------------------


async def sdk_sign_in_and_call(
    mcp_url: str, account: str, tool: str, arguments: dict[str, Any], seen: list[tuple[str, str, int]]
) -> tuple[list[str], CallToolResult, MemoryTokenStorage]:
    """The `mcp` SDK client connects to authgate, registers and signs in at the IdP (as
    `account`), lists the tools and calls `tool`. Returns the tool names, the result, the storage."""
    browser, storage = IdpBrowser(account), MemoryTokenStorage()
    provider = public_client(
        mcp_url, "seed page test", REDIRECT_URI, storage, browser.redirect_handler, browser.callback_handler
    )

    async def log(response: httpx2.Response) -> None:
        seen.append((response.request.method, str(response.request.url), response.status_code))

    try:
        async with httpx2.AsyncClient(
            auth=provider, timeout=httpx2.Timeout(30.0), event_hooks={"response": [log]}
        ) as http:
            with anyio.fail_after(FLOW_TIMEOUT):
                async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
                    tools = await client.list_tools()
                    result = await client.call_tool(tool, arguments)
                    return [t.name for t in tools.tools], result, storage
    finally:
        browser.agent.close()


def text_of(result: CallToolResult) -> str:
    assert not result.is_error, result.content
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def json_of(result: CallToolResult) -> Any:
    return json.loads(text_of(result))
