"""The housekeeping loop (server/runtime.py) purges connection attempts older than
`attempts_retention_hours`, and keeps the rest."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from authgate.config.settings import load_settings
from authgate.server.runtime import housekeeping
from authgate.store.models import AttemptNote
from authgate.store.sql import sql_stores
from support import requirements as req


@pytest.mark.requirement(req.ISSUE13_ATTEMPTS_BOUNDED)
async def test_housekeeping_purges_attempts_past_their_retention(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, attempts_retention_hours=1)
    stores = sql_stores(f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}")
    await stores.open()
    try:
        now = time.time()
        notes = [
            AttemptNote(at=now - 7200, steps=("authorize",), client_id="two-hours-ago"),
            AttemptNote(at=now - 60, steps=("authorize",), client_id="a-minute-ago"),
        ]
        await stores.attempts.record_attempts(notes, max_rows=100, window=3600)
        chores = asyncio.create_task(housekeeping(settings, stores, interval=0.01))
        try:
            deadline = time.monotonic() + 10
            while len(await stores.attempts.list_attempts(since=0)) > 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            chores.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chores
        assert [a.client_id for a in await stores.attempts.list_attempts(since=0)] == ["a-minute-ago"]
    finally:
        await stores.close()
