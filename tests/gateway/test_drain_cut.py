"""A stop's drain cutting an HTTP upstream's SSE answer that has begun (issue 19, Done when 7):
the cut goes the way of a timeout (gateway/drain.py `take_cut`, gateway/http/reply.py). The
event the upstream stopped in the middle of is terminated, the client's last event is a
well-formed JSON-RPC error for its request id (shutting_down, retryable), the 2025-era
upstream gets `notifications/cancelled` in the request's session, and authgate exits 0
without a traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import requirements as req
from support.ports import free_port

from .conftest import service_token, start_gateway
from .faulty_upstream import HALF_EVENT, SESSION, FaultyUpstream
from .mcp_wire import initialize_request, legacy_headers

WAIT = 30.0


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FaultyUpstream]:
    faulty = FaultyUpstream(free_port(), tmp_path / "upstream.log")
    faulty.start()
    yield faulty
    faulty.kill()


def sse_events(stream: bytes) -> list[str]:
    """Each event's data as a client's SSE parser dispatches it (WHATWG HTML §9.2.6)."""
    events, data = [], []
    for line in stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n").decode().split("\n"):
        if not line:
            if data:
                events.append("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    return events  # an event the stream ended in the middle of is never dispatched


def _notification(upstream: FaultyUpstream, request_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for note in upstream.marks()["notifications"]:
            if (
                note["body"].get("method") == "notifications/cancelled"
                and note["body"]["params"]["requestId"] == request_id
            ):
                return dict(note)
        time.sleep(0.05)
    raise AssertionError(f"the upstream got no notifications/cancelled for {request_id}: {upstream.marks()}")


@pytest.mark.requirement(req.ISSUE19_SIGTERM_DRAIN)
def test_a_drain_cut_of_a_begun_sse_answer_ends_it_well_formed_and_cancels_upstream(
    tmp_path: Path, upstream: FaultyUpstream
) -> None:
    server = start_gateway(tmp_path, upstream.url, AUTHGATE_SHUTDOWN_DRAIN_SECONDS="1", AUTHGATE_SHUTDOWN_TIMEOUT="3")
    try:
        token = service_token(server, "drain-cut")
        r = httpx.post(server.mcp_url, json=initialize_request(), headers=legacy_headers(token), timeout=10)
        assert r.headers["mcp-session-id"] == SESSION
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "half_event_sse"}}
        got = b""
        with httpx.stream(
            "POST", server.mcp_url, json=body, headers=legacy_headers(token, SESSION), timeout=httpx.Timeout(10)
        ) as stream:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
            chunks = stream.iter_raw()
            while not got.endswith(HALF_EVENT):  # the answer has begun, and stopped mid-event
                got += next(chunks)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            got += b"".join(chunks)  # ends after the 1 s drain (a read past 10 s would fail)
        code = server.proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"authgate did not exit within {WAIT} s of SIGTERM") from None
    finally:
        server.kill(signal.SIGKILL)
    assert code == 0, server.logs()
    *_, cut, last = sse_events(got)
    assert cut.startswith('{"jsonrpc": "2.0", "method": "notifications/message"'), cut  # terminated as it was
    answer = json.loads(last)
    assert answer["id"] == 7 and answer["error"]["code"] == -32603, answer
    assert "shutting down" in answer["error"]["message"], answer
    assert answer["error"]["data"] == {"source": "authgate", "reason": "shutting_down", "retryable": True}
    cancel = _notification(upstream, 7)
    assert cancel["body"]["params"]["reason"] == "authgate is shutting down"
    assert cancel["headers"]["mcp-session-id"] == SESSION and "authorization" not in cancel["headers"]
    logs = server.logs()
    assert "Traceback" not in logs and "CancelledError" not in logs, logs
    assert "outcome=error_event:shutting_down" in logs, logs
