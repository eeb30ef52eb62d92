"""authgate's version, in a module of its own so that reading it imports nothing else (the
CLI's `--version`, the `User-Agent` of outbound clients, MCP server info)."""

__version__ = "0.1.0"
