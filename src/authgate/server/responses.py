"""Rendering of OAuth errors and JSON bodies: the one place they become HTTP responses."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from authgate.errors import InvalidClient, OAuthError, SlowDown, TemporarilyUnavailable

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})


def oauth_error(exc: OAuthError, *, basic_attempted: bool = False) -> JSONResponse:
    headers: dict[str, str] = {}
    status = exc.status
    if isinstance(exc, InvalidClient) and basic_attempted:
        headers["WWW-Authenticate"] = 'Basic realm="authgate"'  # RFC 6749 §5.2
    if isinstance(exc, SlowDown | TemporarilyUnavailable):  # RFC 9110 §10.2.3
        headers["Retry-After"] = str(exc.retry_after)
    return json_response(exc.as_dict(), status, headers)
