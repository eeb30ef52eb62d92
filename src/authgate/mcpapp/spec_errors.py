"""`SpecErrorsServer`: the SDK's `MCPServer` with the error codes the MCP spec names for what
authgate's built-in servers (the knowledge base, `whoami`) do not have.

* `prompts/get` of an unknown prompt: -32602 Invalid params at every revision (the SDK 2.3.0
  answers -32603 Internal error at 2026-07-28 and code 0 before).
* `resources/read` of an unknown resource: -32602 with `data.uri` from 2026-07-28 (SEP-2164,
  what the SDK answers) and -32002 "Resource not found" with `data.uri` up to 2025-11-25.

Tested by tests/gateway/test_conformance_builtin.py (the conformance suite against
authgate's own `/mcp`) and tests/kb (the codes at both revisions).
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, GetPromptRequestParams, ReadResourceRequestParams

RESOURCE_NOT_FOUND_2025 = -32002  # MCP 2025-11-25 server/resources, "Error Handling"
STATELESS_REVISION = "2026-07-28"
MAX_ECHOED = 200  # characters of a caller's prompt name repeated in the error


class SpecErrorsServer(MCPServer[Any]):
    async def _handle_get_prompt(self, ctx: ServerRequestContext[Any], params: GetPromptRequestParams) -> Any:
        if self._prompt_manager.get_prompt(params.name) is None:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {params.name[:MAX_ECHOED]}")
        return await super()._handle_get_prompt(ctx, params)

    async def _handle_read_resource(self, ctx: ServerRequestContext[Any], params: ReadResourceRequestParams) -> Any:
        try:
            return await super()._handle_read_resource(ctx, params)
        except MCPError as err:
            version = getattr(ctx, "protocol_version", None) or ""
            if err.code == INVALID_PARAMS and version < STATELESS_REVISION:  # dates compare as strings
                raise MCPError(code=RESOURCE_NOT_FOUND_2025, message=err.message, data=err.data) from None
            raise
