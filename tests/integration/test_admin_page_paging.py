"""/admin reads one page (issue 13): with 2 000 stored clients, page 3 shows the right 50, newest
first, with each one's live grants counted, and what the page read from the store is that
page, a count and the bounded lists — counted row by row as the store returns them.

The page runs in-process on a real runtime (SQLite in a temporary data directory, the admin
page's own handlers under httpx's ASGI transport): its stores are the real ones, each call
passed through a wrapper that counts the rows it returned (nothing is answered for the store).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from authgate.config.settings import load_settings
from authgate.server.routes.admin import PAGE_SIZE, AdminPages, admin_routes
from authgate.server.runtime import Runtime, open_runtime
from authgate.server.security import SESSION_COOKIE
from authgate.store.models import Client, RefreshFamily, RefreshToken, User
from support import requirements as req

CLIENTS = 2000
NOW = time.time()
pytestmark = pytest.mark.requirement(req.ISSUE13_LISTINGS_READ_ONE_PAGE)


class CountingStore:
    """The real store; each list a method returns is counted (`rows[method]`), each call too."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.rows: Counter[str] = Counter()
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._store, name)
        if not callable(real):
            return real

        async def counted(*args: Any, **kwargs: Any) -> Any:
            result = await real(*args, **kwargs)
            self.calls.append((name, args, kwargs))
            if isinstance(result, list | dict):
                self.rows[name] += len(result)
            return result

        return counted


def client_id(i: int) -> str:
    return f"client-{i:04d}"


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = load_settings(None, data_dir=tmp_path / "data")
    rt = await open_runtime(settings, create_first_user=False)
    clients = rt.stores.clients
    for i in range(CLIENTS):  # client-0000 is the oldest; two share each creation time
        meta = {"redirect_uris": ["https://app.example/cb"], "client_name": f"app {i}"}
        await clients.add_client(Client(client_id(i), meta, created_at=NOW - 10_000 + i // 2, last_used_at=NOW))
    for name in ("root", "ann", "ben"):
        await rt.stores.users.add_user(User(f"uid-{name}", name, "$argon2id$unused", NOW, roles=("admin",)))
    # client-1875 (on page 3) holds two live grants and a revoked one; client-1860 an expired one
    grants = [("f1", 1875, "uid-ann"), ("f2", 1875, "uid-ben"), ("f3", 1875, "uid-ann"), ("f4", 1860, "uid-ann")]
    for family_id, i, user_id in grants:
        family = RefreshFamily(family_id, client_id(i), user_id, ("mcp",), (), NOW - 60)
        expires = NOW - 1 if family_id == "f4" else NOW + 3600
        await rt.stores.grants.create_family(family, RefreshToken(f"t-{family_id}", family_id, NOW - 60, expires))
    await rt.stores.grants.revoke_family("f3", "test", NOW)
    yield rt
    await rt.close()


async def admin_page(rt: Runtime, store: CountingStore, query: str) -> str:
    stores = dataclasses.replace(rt.stores, core=store)
    pages = AdminPages(rt.auth, stores, rt.signer, rt.settings).handlers()
    app = Starlette(routes=[Route(p, pages[name], methods=m) for p, name, m in admin_routes("")])
    cookie = rt.signer.dumps("session", {"uid": "uid-root", "at": time.time(), "v": 0})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        http.cookies.set(SESSION_COOKIE, cookie)
        r = await http.get(f"/admin?{query}")
    assert r.status_code == 200, r.text
    return r.text


def client_rows(html: str) -> list[tuple[str, str]]:
    """(client id, live grants) of each row of the clients table."""
    body = html.split('<h2 id="clients">', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    cells = [re.findall(r"<td[^>]*>(?:<bdi>)?([^<]*)(?:</bdi>)?</td>", row) for row in body.split("<tr>")[1:]]
    return [(row[1], row[6]) for row in cells]  # name, client id, kind, hosts, created, last used, grants


async def test_page_3_of_2000_clients_reads_that_page_only(runtime: Runtime) -> None:
    store = CountingStore(runtime.stores.core)
    html = await admin_page(runtime, store, "clients=3")
    rows = client_rows(html)
    # newest first (the newest is client-1999; ties of creation time by id, descending)
    assert [cid for cid, _ in rows] == [client_id(i) for i in range(1899, 1849, -1)]
    grants = dict(rows)
    assert grants[client_id(1875)] == "2" and grants[client_id(1860)] == "0"  # revoked, expired: not counted
    assert f"Clients ({CLIENTS})" in html and f"Page 3 of {CLIENTS // PAGE_SIZE}" in html
    # what the store returned for the whole page: its 50 clients, 3 users, a count per client
    # holding a grant, the newest live grants (2) — nothing proportional to the 2 000
    assert store.rows["list_clients"] == PAGE_SIZE
    assert store.rows["list_users"] == 3
    assert store.rows["count_live_grants"] == 1
    assert store.rows["list_live_grants"] == 2
    assert sum(store.rows.values()) <= PAGE_SIZE + 3 + 1 + 2
    listed = [kwargs for name, _, kwargs in store.calls if name in ("list_clients", "list_users")]
    assert listed == [{"limit": PAGE_SIZE, "offset": 2 * PAGE_SIZE}, {"limit": PAGE_SIZE, "offset": 0}]
    (counted,) = [args[0] for name, args, _ in store.calls if name == "count_live_grants"]
    assert list(counted) == [cid for cid, _ in rows]  # the page's clients, not every client

    # a page number past the end is the last page, read the same way
    store = CountingStore(runtime.stores.core)
    rows = client_rows(await admin_page(runtime, store, "clients=999999"))
    assert [cid for cid, _ in rows] == [client_id(i) for i in range(49, -1, -1)]
    assert store.rows["list_clients"] == PAGE_SIZE
