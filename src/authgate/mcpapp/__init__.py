"""The small built-in MCP server `authgate serve` protects until a gateway upstream is set."""
