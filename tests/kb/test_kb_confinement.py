"""A knowledge base publishes only the files inside its folders (issue 11, done-when 3).

Symbolic links to files or folders, hard links (other names of a file that may live anywhere,
such as authgate's own secret.key) and authgate's data directory are never indexed, `kb add`
names each one it skipped, and a file swapped for a link after indexing stops being served.
Checked end to end: the real `authgate serve` answers `query_knowledge_base` over /mcp.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate.kb.indexer import Indexer
from authgate.kb.store import KnowledgeStore
from support.authgate_server import AuthgateServer
from support.stdio_support import machine_token

HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-06-18",
}


def _session(server: AuthgateServer, token: str) -> dict[str, str]:
    """Headers of an initialized MCP session of a caller holding `token`."""
    headers = {**HEADERS, "Authorization": f"Bearer {token}"}
    init = httpx.post(
        server.mcp_url,
        headers=headers,
        timeout=30,
        json={
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
    )
    assert init.status_code == 200, init.text
    headers["Mcp-Session-Id"] = init.headers["mcp-session-id"]
    httpx.post(
        server.mcp_url, headers=headers, timeout=30, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )
    return headers


def _query(server: AuthgateServer, headers: dict[str, str], words: str) -> list[str]:
    """The paths `query_knowledge_base` returns for `words` in the `notes` knowledge base."""
    r = httpx.post(
        server.mcp_url,
        timeout=30,
        headers=headers,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "query_knowledge_base", "arguments": {"knowledge_base_id": "notes", "query": words}},
        },
    )
    assert r.status_code == 200, r.text
    lines = [line[5:] for line in r.text.splitlines() if line.startswith("data:")] or [r.text]
    result: dict[str, Any] = json.loads(lines[-1])["result"]
    assert not result.get("isError"), result
    return sorted({hit["source"]["path"] for hit in result["structuredContent"]["results"]})


@pytest.fixture
def server(tmp_path: Path) -> Any:
    server = AuthgateServer(tmp_path / "gate")
    server.add_user()
    server.start()  # writes data/secret.key
    yield server
    server.stop()


def test_links_and_the_data_dir_are_never_served(server: AuthgateServer, tmp_path: Path) -> None:
    secret_key = server.data_dir / "secret.key"
    assert secret_key.is_file()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.md").write_text("# Private\n\nzebracorn payroll figures\n")
    (outside / "sub").mkdir()
    (outside / "sub" / "deep.md").write_text("# Deep\n\nquokkadeep roadmap\n")
    (outside / "hard.md").write_text("# Hard\n\nwombathard salaries\n")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "ok.md").write_text("# Welcome\n\npineapple onboarding guide\n")
    (notes / "swap.md").write_text("# Swap\n\nmangosteen release notes\n")
    (notes / "key.md").symlink_to(secret_key)
    (notes / "private.md").symlink_to(outside / "private.md")
    (notes / "linked").symlink_to(outside / "sub", target_is_directory=True)
    os.link(outside / "hard.md", notes / "hard.md")
    os.link(secret_key, notes / "key-hard.txt")

    done = server.cli("kb", "add", "notes", str(notes))
    assert done.returncode == 0, done.stderr
    for line in (
        "key.md: symbolic link",
        "private.md: symbolic link",
        "linked/: symbolic link",
        "hard.md: hard link",
        "key-hard.txt: hard link",
    ):
        assert f"skipped {line}" in done.stdout, done.stdout
    assert "notes: 2 added" in done.stdout, done.stdout

    token = _session(server, machine_token(server)[0])
    assert _query(server, token, "pineapple") == ["ok.md"]
    assert _query(server, token, "mangosteen") == ["swap.md"]
    secret_words = secret_key.read_text().strip()
    for words in ("zebracorn", "quokkadeep", "wombathard", secret_words):
        assert _query(server, token, words) == [], words

    # The indexed file is replaced by a link to a secret: the next pass drops it.
    (notes / "swap.md").unlink()
    (notes / "swap.md").symlink_to(outside / "private.md")
    done = server.cli("kb", "reindex", "notes")
    assert "skipped swap.md: symbolic link" in done.stdout, done.stdout
    assert _query(server, token, "mangosteen") == []
    assert _query(server, token, "zebracorn") == []


def test_data_dir_inside_a_source_is_left_out(tmp_path: Path) -> None:
    root = tmp_path / "everything"
    data = root / "authgate-data"
    data.mkdir(parents=True)
    (data / "notes.md").write_text("# Internal\n\nsealed material\n")
    (root / "readme.md").write_text("# Readme\n\nplain words\n")
    store = KnowledgeStore(tmp_path / "kb.sqlite3")
    store.open()
    store.add_knowledge_base("all", [root], now=0.0)
    report = Indexer(store, excluded=(data,)).reindex("all")
    assert sorted(store.indexed_files("all", "everything")) == ["readme.md"]
    assert "authgate-data/: authgate's own data directory" in report.skipped


def test_a_link_swapped_in_after_listing_is_refused_at_open(tmp_path: Path) -> None:
    """The read itself refuses a link (O_NOFOLLOW), not only the folder walk."""
    from authgate.kb.indexer import SkippedFile, read_inside

    (tmp_path / "target.md").write_text("secret")
    root = tmp_path / "kb"
    root.mkdir()
    (root / "a.md").symlink_to(tmp_path / "target.md")
    with pytest.raises(OSError):  # ELOOP: the final component is a link
        read_inside(root, root / "a.md", None)
    (root / "b.md").write_text("fine")
    os.link(root / "b.md", tmp_path / "elsewhere.md")
    with pytest.raises(SkippedFile, match="hard link"):
        read_inside(root, root / "b.md", None)
