"""A POST to /mcp running in a thread, for tests that act while calls are in flight (a stop, a
timeout): `InFlight(url, headers, body).start()`, `wait_started()` once the response headers
arrived, `join()` for what the client finally got. Every wait is bounded."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

WAIT = 30.0


class InFlight(threading.Thread):
    def __init__(self, url: str, headers: dict[str, str], body: dict[str, Any], *, timeout: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.body, self.timeout = url, headers, body, timeout
        self.started = threading.Event()
        self.status = 0
        self.content_type = ""
        self.messages: list[Any] = []  # the JSON body, or each SSE event's data
        self.error: str | None = None  # the transport failed (connection refused or cut)

    def run(self) -> None:
        try:
            with httpx.stream(
                "POST", self.url, headers=self.headers, json=self.body, timeout=httpx.Timeout(10, read=self.timeout)
            ) as r:
                self.status, self.content_type = r.status_code, r.headers.get("content-type", "")
                self.started.set()
                if self.content_type.startswith("text/event-stream"):
                    for line in r.iter_lines():
                        if line.startswith("data:") and line[5:].strip():  # not a priming event
                            self.messages.append(json.loads(line[5:]))
                else:
                    self.messages.append(json.loads(r.read()))
        except (httpx.HTTPError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.started.set()

    def wait_started(self) -> None:
        assert self.started.wait(WAIT), f"no answer to {self.body.get('method')} started within {WAIT} s"

    def answer(self) -> Any:
        """The last JSON-RPC message the client got, once the call is over."""
        self.join(WAIT)
        assert not self.is_alive(), f"{self.body.get('method')} still running after {WAIT} s"
        assert self.error is None and self.messages, f"the call failed on the wire: {self.error}"
        return self.messages[-1]
