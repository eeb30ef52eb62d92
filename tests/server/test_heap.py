"""`gc_tuning`: after start-up the loaded heap is frozen and generation 0 is collected far
less often (authgate.server.heap); with the setting off the collector is left alone."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authgate.config.settings import load_settings
from authgate.server.app import build_app
from authgate.server.heap import GEN0_THRESHOLD, settle_after_startup


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the test process's collector back as it was."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def _noop_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


async def _start_and_stop(tmp_path: Path, **overrides: Any) -> tuple[tuple[int, int, int], int]:
    """Run authgate's lifespan; the collector's thresholds and frozen count once started."""
    settings = load_settings(None, data_dir=tmp_path, public_url="http://127.0.0.1:8000", **overrides)
    app = build_app(settings, _noop_app)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    assert (await asyncio.wait_for(outbox.get(), 30))["type"] == "lifespan.startup.complete"
    seen = gc.get_threshold(), gc.get_freeze_count()
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await asyncio.wait_for(outbox.get(), 30))["type"] == "lifespan.shutdown.complete"
    await task
    return seen


def test_settling_freezes_the_heap_and_raises_generation_0(collector: None) -> None:
    gc.set_threshold(700, 10, 10)
    settle_after_startup()
    assert gc.get_threshold() == (GEN0_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 10_000  # pytest, authgate and their libraries are loaded


def test_a_disabled_collector_stays_disabled(collector: None) -> None:
    gc.set_threshold(0)
    settle_after_startup()
    assert gc.get_threshold()[0] == 0


async def test_authgate_settles_the_heap_once_started(tmp_path: Path, collector: None) -> None:
    gc.set_threshold(700, 10, 10)
    thresholds, frozen = await _start_and_stop(tmp_path)
    assert thresholds[0] == GEN0_THRESHOLD and frozen > 0


async def test_gc_tuning_off_leaves_the_collector_alone(tmp_path: Path, collector: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    thresholds, frozen = await _start_and_stop(tmp_path, gc_tuning=False)
    assert thresholds == (700, 10, 10) and frozen == 0
