"""Two authgate replicas on one PostgreSQL database, under a load of whole OAuth flows, and one
of them killed with SIGKILL (issue 19, done-when 4): nothing either had answered is lost. Every
client registered and every refresh token handed out still works on the survivor, and on the
killed replica once restarted on its data directory.

The replicas also start together on the empty database, as a deployment's first start does:
exactly one creates the first user `admin` and writes its one-time password, into its own
data directory (server/runtime.py `ensure_first_user`); the load signs in with it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.flow_load import FlowLoad, still_works
from support.pg import fresh_database

pytestmark = pytest.mark.postgres

PASSWORD_FILE = "initial-admin-password"


@pytest.fixture
async def database() -> AsyncIterator[sa.URL]:
    async with fresh_database("authgate_kill9") as url:
        yield url


def _start_together(servers: list[AuthgateServer]) -> None:
    failures: list[BaseException] = []

    def start(server: AuthgateServer) -> None:
        try:
            server.start()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if failures:
        raise failures[0]


@pytest.mark.requirement(req.ISSUE19_KILL_9_LOSES_NOTHING)
def test_kill_9_of_one_replica_under_load_loses_nothing(
    database: sa.URL, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    shared = {
        "AUTHGATE_DATABASE_URL": database.render_as_string(hide_password=False),
        "AUTHGATE_SECRET_KEY": secrets.token_urlsafe(32),
        "AUTHGATE_REGISTRATIONS_PER_MINUTE": "100000",
    }
    survivor = AuthgateServer(tmp_path / "a", extra_env=shared)
    # The same public URL, as behind a load balancer: one issuer, audience and key set.
    killed = AuthgateServer(tmp_path / "b", extra_env={**shared, "AUTHGATE_PUBLIC_URL": survivor.url})
    request.node._authgate_servers = [survivor, killed]  # their logs on failure
    try:
        _start_together([survivor, killed])
        written = [s.data_dir / PASSWORD_FILE for s in (survivor, killed) if (s.data_dir / PASSWORD_FILE).exists()]
        assert len(written) == 1, written  # one first user, one password file: the winner's
        password = written[0].read_text().strip()

        with FlowLoad([survivor, killed], "admin", password, workers=4) as load:
            time.sleep(2.0)
            load.up.remove(killed)  # the load balancer's health check, at the moment of the kill
            killed.kill()  # SIGKILL, mid-flow
            time.sleep(1.5)  # the survivor carries every flow
        ledger = load.ledger
        assert not ledger.problems, "\n".join(ledger.problems[:20])
        assert ledger.clients and ledger.refresh, ledger.statuses

        killed.start()  # on the same data directory and port
        for client_id in ledger.clients:  # every client answered 201, every newest refresh token
            token = ledger.refresh.get(client_id, (None, 0.0))[0]
            ok, renewed, failed = still_works(survivor, client_id, token)
            assert ok, failed
            ok, _, failed = still_works(killed, client_id, renewed, public=survivor.url)
            assert ok, failed
        assert "Traceback" not in survivor.logs()
    finally:
        killed.stop()
        survivor.stop()
