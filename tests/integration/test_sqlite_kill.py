"""One authgate on SQLite under a load of whole OAuth flows, killed with SIGKILL mid-flow
(issue 18: the store's transactions run in place on the loop's thread, a write's COMMIT hands
its WAL frames to the operating system and a flush thread fsyncs them, one fsync for a
request's writes and whatever committed meanwhile, before its answer:
`store/sql/sqlite_direct.py`, `store/durability.py`): nothing it had answered is lost. Every
client answered 201 and every newest refresh token answered 200 still work once it is
restarted on the same data directory.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.flow_load import FlowLoad, still_works


@pytest.mark.requirement(req.ISSUE18_SQLITE_KILL_9_LOSES_NOTHING)
def test_kill_9_under_load_on_sqlite_loses_nothing_answered(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = AuthgateServer(tmp_path / "a", extra_env={"AUTHGATE_REGISTRATIONS_PER_MINUTE": "100000"})
    request.node._authgate_servers = [server]  # its logs on failure
    server.add_user()
    try:
        server.start()
        with FlowLoad([server], server.username, server.password, workers=4) as load:
            deadline = time.monotonic() + 20
            while load.flows < 5 and time.monotonic() < deadline:  # writes of every kind in flight
                time.sleep(0.1)
            server.kill()  # SIGKILL, mid-flow
            time.sleep(0.5)
        ledger = load.ledger
        assert load.flows >= 5, ledger.statuses
        assert not ledger.problems, "\n".join(ledger.problems[:20])

        server.start()  # on the same data directory and port
        for client_id in ledger.clients:
            token = ledger.refresh.get(client_id, (None, 0.0))[0]
            ok, _, failed = still_works(server, client_id, token)
            assert ok, failed
        assert "Traceback" not in server.logs()
    finally:
        server.stop()
