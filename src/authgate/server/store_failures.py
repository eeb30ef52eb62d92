"""A database that fails a request, answered: never a text/plain 500, never a traceback.

A `StoreUnavailable` (the database cannot answer now: a lost connection, a lock held past the
busy timeout) is `503` with `Retry-After`, in the shape of the surface the request came to:

- the OAuth endpoints (/token, /register, /revoke, the discovery documents): RFC 6749
  `{"error": "temporarily_unavailable", …}` JSON (`error_responses.oauth_error`);
- the browser pages (/authorize, /login, /consent, proxy mode's callback): a short HTML page
  (the client's redirect URI cannot be checked without the database, so no error redirect);
- /mcp (the guard's token lookups, the policy layer, the gateway): a JSON-RPC error
  (`gateway.errors.DatabaseUnavailable`, rendered by `gateway.errors.send_error`).

Any other `StoreError` is a `500` in the same shapes (`server_error`, an HTML page,
`DatabaseFailed`). The log gets one WARNING line for an unavailable database and the
traceback of any other failure; the request log shows the status the client got.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope, Send

from authgate.error_responses import oauth_error
from authgate.errors import ServerError, StoreError, StoreUnavailable, TemporarilyUnavailable
from authgate.gateway.errors import DatabaseFailed, DatabaseUnavailable, send_error
from authgate.server.pages import error_page

log = logging.getLogger("authgate.store")

RETRY_AFTER_SECONDS = 1  # a lost connection is replaced at once; a lock is held for moments
UNAVAILABLE = "the database cannot answer right now; try again in a moment"
FAILED = "the server could not complete the request"


def _logged(exc: StoreError, where: str) -> None:
    if isinstance(exc, StoreUnavailable):
        log.warning("%s: answered 503: %s", where, exc)
    else:
        log.error("%s: answered 500: %s", where, exc, exc_info=exc)


def oauth_answer(exc: StoreError, request: Request) -> Response:
    """The OAuth endpoints' answer: RFC 6749 JSON, `temporarily_unavailable` or `server_error`."""
    _logged(exc, f"{request.method} {request.url.path}")
    if isinstance(exc, StoreUnavailable):
        return oauth_error(TemporarilyUnavailable(UNAVAILABLE, retry_after=RETRY_AFTER_SECONDS))
    return oauth_error(ServerError(FAILED))


def page_answer(exc: StoreError, request: Request) -> Response:
    """The browser pages' answer: a short HTML page, 503 with Retry-After or 500."""
    _logged(exc, f"{request.method} {request.url.path}")
    if isinstance(exc, StoreUnavailable):
        page = error_page(
            "Try again in a moment",
            "The sign-in service could not reach its database.",
            "Reload this page in a few seconds.",
            status=503,
        )
        page.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return page
    return error_page("Something went wrong", "The sign-in service could not complete this step.", status=500)


async def mcp_answer(exc: StoreError, scope: Scope, started: bool, send: Send) -> None:
    """/mcp's answer (the gate's, server/gate.py): a JSON-RPC error when the answer has not
    started; once it has (a stream already running), the log says why it ends."""
    _logged(exc, f"{scope.get('method')} {scope.get('path')}")
    if started:
        return  # the client sees its stream end; nothing else can be said now
    rpc = (
        DatabaseUnavailable(f"authgate: {UNAVAILABLE}")
        if isinstance(exc, StoreUnavailable)
        else DatabaseFailed(f"authgate: {FAILED}")
    )
    await send_error(send, rpc)
