"""The apps the benchmarks load: one trivial MCP server, served bare or behind authgate.

    python -m bench.apps bare|authgate PORT DATA_DIR
"""

from __future__ import annotations

import logging
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
        stateless_http=True, json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))


def main() -> None:
    kind, port, data_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    logging.basicConfig(level=logging.WARNING)  # the SDK's INFO logging halves throughput
    app = mcp_app()
    if kind == "authgate":
        app = authgate.protect(app, public_url=f"http://127.0.0.1:{port}", port=port, data_dir=data_dir,
                               log_level="warning")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
