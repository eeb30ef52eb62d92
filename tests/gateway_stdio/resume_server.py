"""A raw stdio MCP server (JSON lines, no SDK) for the resumable-stream tests (test_stdio_resume.py):
every step is the test's to choose.

Tools (`tools/call`, arguments):
- `poll` {"retry": ms}: a progress notification, then `notifications/authgate/close_sse_stream`
  for its own request (the bridge ends the connection; gateway/stdio/resume.py), then after
  0.3 s a second progress notification and the answer "polled".
- `wait` {"seconds": s, "marker": path}: a progress notification, then the answer "waited" after `seconds`; a
  `notifications/cancelled` for it before then writes "cancelled" to `marker` instead.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_cancel: dict[Any, threading.Event] = {}


def _write(message: dict[str, Any]) -> None:
    with _lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def _progress(token: Any, n: int) -> None:
    if token is not None:
        _write(
            {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": n}}
        )


def _call(request_id: Any, name: str, args: dict[str, Any], token: Any) -> None:
    stop = _cancel.setdefault(request_id, threading.Event())
    if name == "poll":
        _progress(token, 1)
        hint: dict[str, Any] = {"requestId": request_id}
        if "retry" in args:
            hint["retry"] = args["retry"]
        _write({"jsonrpc": "2.0", "method": "notifications/authgate/close_sse_stream", "params": hint})
        stop.wait(0.3)
        _progress(token, 2)
        text = "polled"
    else:
        _progress(token, 0)
        if stop.wait(float(args.get("seconds", 0))):
            Path(args["marker"]).write_text("cancelled")
            return
        text = "waited"
    _write({"jsonrpc": "2.0", "id": request_id, "result": {"content": [{"type": "text", "text": text}]}})


def main() -> None:
    for line in sys.stdin:
        msg = json.loads(line)
        method, params = msg.get("method"), msg.get("params") or {}
        if method == "initialize":
            result = {
                "protocolVersion": params.get("protocolVersion"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "resume-server", "version": "1"},
            }
            _write({"jsonrpc": "2.0", "id": msg["id"], "result": result})
        elif method == "tools/call":
            token = (params.get("_meta") or {}).get("progressToken")
            args = (msg["id"], params["name"], params.get("arguments") or {}, token)
            threading.Thread(target=_call, args=args, daemon=True).start()
        elif method == "notifications/cancelled":
            _cancel.setdefault(params.get("requestId"), threading.Event()).set()
        elif "id" in msg and method is not None:
            _write({"jsonrpc": "2.0", "id": msg["id"], "result": {}})


if __name__ == "__main__":
    main()
