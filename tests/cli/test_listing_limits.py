"""`authgate clients list` and `users list` read a page (`--limit`, default 100, newest first)
and a count, never the whole table, and say on stderr how many more there are — with `--json`
too, whose stdout stays JSON Lines. The rows are stored through the store's own API, as a
server registering 250 clients would leave them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path

import pytest

from authgate.cli.main import main
from authgate.config.settings import load_settings
from authgate.store.models import Client, RefreshFamily, RefreshToken, User
from authgate.store.sql import sql_stores
from support import requirements as req

pytestmark = pytest.mark.requirement(req.ISSUE13_LISTINGS_READ_ONE_PAGE)
CIMD = "https://chatgpt.example/oauth/client.json"
NOW = time.time()


async def _fill(data_dir: Path) -> None:
    stores = sql_stores(load_settings(None, data_dir=data_dir).effective_database_url, migrate=True)
    await stores.open()
    try:
        for i in range(250):  # c-000 the oldest; every tenth made by the operator
            meta = {"redirect_uris": ["https://app.example/cb"], "client_name": f"app {i}"}
            client = Client(f"c-{i:03d}", meta, created_at=NOW - 1000 + i, last_used_at=NOW)
            await stores.clients.add_client(dataclasses.replace(client, source="operator" if i % 10 == 0 else "dcr"))
        for i, name in enumerate(["ann", "ben", "cat", "dan", "eve"]):
            await stores.users.add_user(User(f"uid-{name}", name, "$argon2id$unused", NOW - 100 + i))
        family = RefreshFamily("f-cimd", CIMD, "uid-ann", ("mcp",), (), NOW - 60)
        await stores.grants.create_family(family, RefreshToken("t-cimd", "f-cimd", NOW - 60, NOW + 3600))
    finally:
        await stores.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    data_dir = tmp_path_factory.mktemp("limits") / "data"
    asyncio.run(_fill(data_dir))
    return ("--data-dir", str(data_dir))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[list[str], str]:
    assert main(list(argv)) == 0, argv
    captured = capsys.readouterr()
    return captured.out.splitlines(), captured.err.strip()


def test_clients_list_shows_the_newest_page_and_how_many_more(
    capsys: pytest.CaptureFixture[str], data: tuple[str, str]
) -> None:
    header, *rows = _run(capsys, "clients", "list", *data)[0]
    assert header.startswith("CLIENT ID") and len(rows) == 100  # the default
    assert [r.split()[0] for r in rows[:3]] == ["c-249", "c-248", "c-247"]  # newest first
    lines, err = _run(capsys, "clients", "list", "--limit", "20", "--json", *data)
    listed = [json.loads(line) for line in lines]  # stdout: JSON Lines only
    assert [c["client_id"] for c in listed] == [f"c-{i:03d}" for i in range(249, 229, -1)]
    assert err == "authgate: 231 more clients not listed (newest first, --limit 20): raise --limit"
    # all of them: the CIMD client (known by its grant) after the stored ones, nothing more said
    lines, err = _run(capsys, "clients", "list", "--limit", "300", "--json", *data)
    listed = [json.loads(line) for line in lines]
    assert len(listed) == 251 and listed[-1]["client_id"] == CIMD and listed[-1]["live_grants"] == 1
    assert err == ""


def test_clients_list_pages_one_source(capsys: pytest.CaptureFixture[str], data: tuple[str, str]) -> None:
    (header, *rows), err = _run(capsys, "clients", "list", "--source", "operator", "--limit", "2", *data)
    assert [r.split()[0] for r in rows] == ["c-240", "c-230"]
    assert err == "authgate: 23 more clients not listed (newest first, --limit 2): raise --limit"  # 25 in all
    lines, err = _run(capsys, "clients", "list", "--source", "cimd", "--json", *data)
    assert [json.loads(line)["client_id"] for line in lines] == [CIMD] and err == ""


def test_users_list_shows_the_newest_page_and_how_many_more(
    capsys: pytest.CaptureFixture[str], data: tuple[str, str]
) -> None:
    header, *rows = _run(capsys, "users", "list", "--limit", "2", *data)[0]
    assert header.split()[0] == "USER" and [r.split()[0] for r in rows] == ["eve", "dan"]
    lines, err = _run(capsys, "users", "list", "--limit", "2", "--json", *data)
    assert [json.loads(line)["username"] for line in lines] == ["eve", "dan"]
    assert err == "authgate: 3 more users not listed (newest first, --limit 2): raise --limit"
    lines, err = _run(capsys, "users", "list", *data)
    assert len(lines) == 6 and err == ""  # header and all five: the default is 100


@pytest.mark.parametrize("limit", ["0", "-5", "ten", "1000001"])
def test_a_bad_limit_is_a_usage_error(capsys: pytest.CaptureFixture[str], data: tuple[str, str], limit: str) -> None:
    for command in (["clients", "list"], ["users", "list"]):
        with pytest.raises(SystemExit) as exit_:
            main([*command, "--limit", limit, *data])
        assert exit_.value.code == 2
        assert "Traceback" not in capsys.readouterr().err
