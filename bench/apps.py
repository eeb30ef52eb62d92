"""The apps the benchmarks load: one trivial MCP server, served bare or behind authgate.

    python -m bench.apps bare|authgate|guard PORT DATA_DIR

`guard` is authgate with the resource guard alone: the token check, Origin/Host and the request
log, without the per-operation policy and audit trail (issue 6) — what issue 2's "auth
costs ≤ 5 %" target is about. Not a configuration authgate offers: the bench swaps the
policy layer out.

Both run with the same garbage-collector settings: authgate applies its `gc_tuning` once
started (authgate.server.heap), so the bare app gets the same at start-up; otherwise the
comparison would measure the collector, not authentication. BENCH_GC=default leaves both
with CPython's defaults (authgate with gc_tuning off).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

import authgate


def mcp_app():  # type: ignore[no-untyped-def]
    server = MCPServer("bench")

    @server.tool()
    def echo(text: str) -> str:
        return text

    return server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


def main() -> None:
    kind, port, data_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    logging.basicConfig(level=logging.WARNING)  # the SDK's INFO logging halves throughput
    app = mcp_app()
    tuned = os.environ.get("BENCH_GC", "tuned") != "default"
    if kind == "guard":
        from authgate.policy.layer import PolicyLayer

        PolicyLayer.enforcer = property(lambda self: None)  # type: ignore[assignment,method-assign]
    if kind in ("authgate", "guard"):
        app = authgate.protect(
            app,
            public_url=f"http://127.0.0.1:{port}",
            port=port,
            data_dir=data_dir,
            log_level="warning",
            gc_tuning=tuned,
        )
    elif tuned:
        from authgate.server.heap import settle_after_startup

        settle_after_startup()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
