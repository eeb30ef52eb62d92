"""The gateway to a Streamable HTTP upstream (docs/gateway.md).

proxy.py     `HttpUpstreamProxy`: the MCP endpoint forwarded to the upstream, bodies checked
upstream.py  the connection pool to the upstream MCP server, its three timeouts, its failures
relay.py     the upstream's answer (JSON or SSE) streamed back to the client
sessions.py  legacy `Mcp-Session-Id`s bound to the (subject, client) that opened them
"""
