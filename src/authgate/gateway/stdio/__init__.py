"""The gateway to a stdio MCP server: a child process per caller (docs/gateway-stdio.md).

bridge.py         `StdioBridge`: any stdio MCP command served as Streamable HTTP at /mcp
legacy.py         stateful clients (2025-03-26 … 2025-11-25): a child per session
stateless.py      stateless clients (2026-07-28): every message a self-contained POST
stateless_children.py  the children of stateless callers, started and initialized by the bridge
input_required.py the requests a child puts to a stateless client, suspended (InputRequiredResult)
subscriptions.py  `subscriptions/listen` streams (2026-07-28) and their filters
envelope.py       the 2026-07-28 envelope taken off requests and put onto answers
child.py          the child process: JSON-RPC over its stdin and stdout
pool.py           which children run, for whom (subject, client), and for how long
relay.py          what a child sends for one exchange, and the bridge's own requests (`ask`)
tools.py          each child's tool schemas, for the `Mcp-Param-*` header checks
http.py           reading a request; one answer that is JSON until it must stream (SSE)
errors.py         what the bridge refuses or reports, on top of gateway/errors.py
"""
