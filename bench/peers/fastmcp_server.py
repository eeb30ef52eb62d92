"""FastMCP's side of the comparisons, run with the interpreter of the separate FastMCP venv
(`.bench-venv/bin/python bench/peers/fastmcp_server.py …`; scripts/bench-deps.sh makes it).
It imports only fastmcp, mcp and uvicorn: authgate is not installed there.

    fastmcp_server.py jwt PORT PUBLIC_KEY_PEM_FILE ISSUER AUDIENCE
        the same echo tool behind FastMCP's JWTVerifier (RS256, iss/aud checked)
    fastmcp_server.py proxy PORT UPSTREAM_URL
        fastmcp.server.create_proxy(UPSTREAM_URL), served stateless with JSON answers
    fastmcp_server.py oauth PORT
        FastMCP's InMemoryOAuthProvider as the authorization server (dynamic registration on)

Stateless streamable HTTP with JSON answers, like bench/apps.py; logging at WARNING (INFO
logs every request); uvicorn with uvloop + httptools (installed in that venv too), as authgate
runs; the collector settled after start-up as authgate's `gc_tuning` does (BENCH_GC=default:
CPython's defaults), so the comparison measures the frameworks, not the collector.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("FASTMCP_LOG_LEVEL", "WARNING")

import uvicorn  # noqa: E402
from fastmcp import FastMCP  # noqa: E402


def echo_server(auth: object | None) -> FastMCP:
    server = FastMCP("bench", auth=auth)  # type: ignore[arg-type]

    @server.tool
    def echo(text: str) -> str:
        return text

    return server


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    logging.basicConfig(level=logging.WARNING)
    if kind == "jwt":
        from fastmcp.server.auth.providers.jwt import JWTVerifier

        pem, issuer, audience = Path(sys.argv[3]).read_text(), sys.argv[4], sys.argv[5]
        verifier = JWTVerifier(public_key=pem, issuer=issuer, audience=audience, algorithm="RS256")
        server = echo_server(verifier)
    elif kind == "proxy":
        from fastmcp.server import create_proxy

        server = create_proxy(sys.argv[3], name="bench-proxy")
    elif kind == "oauth":
        from fastmcp.server.auth.auth import ClientRegistrationOptions, RevocationOptions
        from fastmcp.server.auth.providers.in_memory import InMemoryOAuthProvider

        provider = InMemoryOAuthProvider(
            base_url=f"http://127.0.0.1:{port}",
            client_registration_options=ClientRegistrationOptions(
                enabled=True, valid_scopes=["mcp"], default_scopes=["mcp"]
            ),
            revocation_options=RevocationOptions(enabled=True),
        )
        server = echo_server(provider)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    app = server.http_app(stateless_http=True, json_response=True)
    if os.environ.get("BENCH_GC", "tuned") != "default":  # authgate's gc_tuning (server/heap.py), for all
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, *gc.get_threshold()[1:])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
