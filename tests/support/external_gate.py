"""authgate in external mode, in-process: `build_app` under uvicorn in a thread (lifespan on),
protecting the built-in `whoami` server. Every wait is bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from authgate.config.settings import Settings

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


@contextmanager
def serve_in_thread(app: Any, port: int) -> Iterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"authgate-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"authgate on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT)


@dataclass(frozen=True)
class ExternalAuthgate:
    url: str
    settings: Settings

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"
