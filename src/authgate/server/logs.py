"""Logs: one line per request with a request id, in text or JSON, never a token or secret.

`RequestLog` is the outermost layer. It takes the caller's `X-Request-Id` when it looks like
one (or mints one), returns it on the response, and after the response logs method, path
(never the query string: it may carry codes or state), status, duration and whatever the
inner layers noted about the request with `authgate.observe.note()` — the guard notes the
subject and client, the policy layer the MCP method and tool. Headers and bodies are never logged.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import logging.handlers
import os
import queue
import re
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate import metering
from authgate.masking import masked_urls
from authgate.observe import REQUEST_KEY

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "subject",
    "client_id",
    "mcp_method",
    "mcp_target",
    "session_id",
    "outcome",  # how an answer ended when not as sent: e.g. error_event:upstream_stream_cut (gateway/http/reply.py)
)

log = logging.getLogger("authgate.request")

# Request ids: a random per-process prefix and a counter. (uuid4 reads the OS's random source
# on every request, which costs ~10 µs on some virtual machines.)
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.converter = time.gmtime  # "time" ends in Z: UTC, whatever the machine's TZ

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(getattr(record, "fields", {}))
        if record.exc_info:  # a library's exception may quote a URL with its password
            doc["exception"] = masked_urls(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


# Characters that could end a text log line early or disguise one: C0/C1 controls, DEL and
# Unicode's line and paragraph separators. A request path, tool or method name is attacker text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` on one line: every control character written as a \\xNN / \\uNNNN escape."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


class TextFormatter(logging.Formatter):
    """One line per record, whatever the message and fields hold; a traceback follows on lines
    that start with "| ", so no text from a request can pass for a record of its own."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.converter = time.gmtime

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        text = masked_urls(super().formatException(ei))  # a library's exception may quote a URL's password
        return "\n".join("| " + escape_controls(line) for line in text.splitlines())

    def formatStack(self, stack_info: str) -> str:
        return "\n".join("| " + escape_controls(line) for line in stack_info.splitlines())

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        line, newline, rest = text.partition("\n")  # the record's line, then any traceback
        fields = getattr(record, "fields", {})
        line += "".join(
            f" {k}={escape_controls(str(fields[k]))}"
            for k in _FIELDS
            if k in fields and k not in ("method", "path", "status")
        )
        return line + newline + rest


class _Enqueue(logging.handlers.QueueHandler):
    """Hands each record to the log writer thread as it is: formatting it (the line, the fields,
    a traceback) and writing it happen there, not on the event loop (~15 µs a request line)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def configure_logging(level: str, fmt: str) -> None:
    """Root handler on stderr, written by a thread of its own (flushed at exit); uvicorn's
    loggers propagate into it (run it with log_config=None)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = logging.handlers.QueueListener(records, handler)
    writer.start()
    atexit.register(writer.stop)
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(records)]
    root.setLevel(level.upper())
    # No formatter here prints the caller, thread or process: not looked up for every record
    # (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.getLogger("uvicorn.access").disabled = True  # the gate and RequestLog write the access log


def open_record(scope: Scope, incoming_id: str | None, session: str | None) -> dict[str, Any]:
    """The log record of one request: its id (the caller's `X-Request-Id` when it looks like
    one, else a new one), method and path (never the query string), and its MCP session."""
    rid = incoming_id if incoming_id and _REQUEST_ID.match(incoming_id) else new_request_id()
    record: dict[str, Any] = {"request_id": rid, "method": scope.get("method"), "path": scope.get("path")}
    if session:
        record["session_id"] = session
    return record


def stamp_start(record: dict[str, Any], message: Message) -> tuple[Message, str | None]:
    """An `http.response.start` noted in the record (status, the session the answer names) and
    carrying the request id back; and that session."""
    record["status"] = message["status"]
    headers = message.get("headers", [])
    session = None
    for key, value in headers:
        if len(key) == 14 and key.lower() == b"mcp-session-id":  # the length first: most are not
            session = value.decode("latin-1")
            record.setdefault("session_id", session)
    return {**message, "headers": [*headers, (b"x-request-id", record["request_id"].encode())]}, session


def write_record(record: dict[str, Any], started: float) -> None:
    seconds = time.monotonic() - started
    if (meter := metering.meter) is not None:  # requests by route template and status (server/metrics.py)
        meter.http(record["path"], record.get("status"), seconds)
    if log.isEnabledFor(logging.INFO):  # below `info` (the benchmarks' `warning`) nothing more to do
        record["duration_ms"] = round(seconds * 1000, 1)
        log.info("%s %s %s", record["method"], record["path"], record.get("status", "-"), extra={"fields": record})


class RequestLog:
    """The request log of every route but the MCP endpoint's, which `server/gate.py` writes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = open_record(scope, _header(scope, b"x-request-id"), _header(scope, b"mcp-session-id"))
        started = time.monotonic()

        async def send_with_id(message: Message) -> None:
            await send(stamp_start(record, message)[0] if message["type"] == "http.response.start" else message)

        try:
            await self.app({**scope, REQUEST_KEY: record}, receive, send_with_id)
        finally:
            write_record(record, started)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:  # ASGI servers hand header names in lowercase
            return str(value.decode("latin-1"))
    return None
