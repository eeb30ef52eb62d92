"""The wait for a stdio child's next message ends at the request's deadline as a timeout, never
as an idle tick, even on uvloop (what `authgate serve` runs on), whose timers fire up to a
millisecond before `time.monotonic()` reaches their time. An idle tick there opened an SSE
stream with a keepalive just before the deadline, and the 504 JSON answer became a 200 stream
(seen once in CI: tests/integration/test_stdio_faults.py::test_a_call_that_never_answers_ends_with_a_json_rpc_error)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvloop

from authgate.gateway.stdio.http import DisconnectWatch
from authgate.gateway.stdio.relay import Wake, next_from
from support import requirements as req


async def _never() -> dict[str, Any]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _wakes(limit: float, idle_every: float) -> list[Wake]:
    watch = DisconnectWatch(_never, limit=limit)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    wakes: list[Wake] = []
    try:
        while not wakes or wakes[-1] is not Wake.TIMEOUT:
            item = await next_from(queue, watch, idle_every)
            assert isinstance(item, Wake)
            wakes.append(item)
    finally:
        watch.close()
    return wakes


@pytest.mark.requirement(req.ISSUE19_STDIO_CALL_TIMEOUT)
def test_a_wait_bounded_by_the_deadline_ends_as_a_timeout_on_uvloop() -> None:
    async def main() -> list[list[Wake]]:
        return [await _wakes(0.0123, 15.0) for _ in range(100)]

    runs = uvloop.run(main())
    assert all(run == [Wake.TIMEOUT] for run in runs), [run for run in runs if run != [Wake.TIMEOUT]][:3]


@pytest.mark.requirement(req.ISSUE19_STDIO_CALL_TIMEOUT)
def test_idle_ticks_still_come_before_a_later_deadline() -> None:
    wakes = uvloop.run(_wakes(0.25, 0.04))
    assert wakes[-1] is Wake.TIMEOUT and Wake.IDLE in wakes[:-1], wakes
