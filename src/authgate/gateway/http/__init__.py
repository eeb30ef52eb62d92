"""The gateway to a Streamable HTTP upstream (docs/gateway.md).

proxy.py         `HttpUpstreamProxy`: the MCP endpoint forwarded to the upstream, bodies checked,
                 each exchange bounded by the call / stream timeout
settings.py      `proxy_from_settings`: the proxy `authgate serve --upstream` builds
upstream.py      the connection pool to the upstream MCP server, its timeouts, its failures
relay.py         the upstream's answer (JSON or SSE) relayed to the client
answer.py        is the upstream's answer JSON-RPC for the request (else 502)
reply.py         what the client has been sent; a failure midway as the SSE stream's last event
cancellation.py  `notifications/cancelled` upstream for 2025-era requests given up on
sessions.py      legacy `Mcp-Session-Id`s bound to the (subject, client) that opened them
upstream_oauth.py an OAuth-protected upstream: each person's own token there (the connection broker),
                 renewed on a 401, a connect link on a 403 insufficient_scope (protected-upstream.md)
"""
