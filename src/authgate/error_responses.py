"""An OAuthError as an HTTP answer: the one rendering every surface uses.

`oauth_error` gives the RFC 6749 §5.2 JSON body, the error's status and the headers the
error knows itself (`OAuthError.headers()`: `Retry-After` on 429/503, `WWW-Authenticate`
after HTTP Basic), never cached. /token, /register and /revoke answer with it (through
`server/responses.py`), and so do the guard's 503 when a token cannot be checked and the
external IdP's metadata mirror. The other families each have theirs: error redirects
`oauth.authorize.error_redirect`, JSON-RPC errors `gateway.errors.send_error`.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from authgate.errors import OAuthError

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1


def oauth_error(exc: OAuthError, *, basic_attempted: bool = False) -> JSONResponse:
    """`exc` as its JSON answer; `basic_attempted`: the client sent HTTP Basic credentials."""
    headers = {**NO_STORE, **exc.headers(basic_attempted=basic_attempted)}
    return JSONResponse(exc.as_dict(), status_code=exc.status, headers=headers)


__all__ = ["NO_STORE", "oauth_error"]
