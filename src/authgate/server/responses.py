"""The routes' answers: JSON bodies never cached, OAuth errors as JSON (rendered in
`authgate.error_responses`, shared with the guard) and as redirects to the client."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from authgate.error_responses import NO_STORE, oauth_error
from authgate.oauth import authorize
from authgate.oauth.authority import Authority
from authgate.oauth.authorize import RedirectError


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})


def error_redirect(auth: Authority, err: RedirectError, status: int = 303) -> RedirectResponse:
    """The browser sent back to the client with the error (RFC 6749 §4.1.2.1, RFC 9207 `iss`):
    302 answering GET /authorize, 303 after a form POST."""
    return RedirectResponse(authorize.error_redirect(auth, err), status_code=status)


class NoAnswer(Response):
    """The answer for a client that is gone (it hung up mid-body, or its body fell silent:
    server/http_protocol.py): nothing is sent, so the request log shows `-`, what it got."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return


__all__ = ["NO_STORE", "NoAnswer", "error_redirect", "json_response", "oauth_error"]
