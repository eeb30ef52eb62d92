"""Browser-facing protections for the sign-in pages: signed values, CSRF, cookies, CSP."""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from authgate.store.models import User
    from authgate.store.protocols import UserStore

CSRF_COOKIE = "authgate_csrf"
SESSION_COOKIE = "authgate_session"


class Signer:
    """Tamper-proof, expiring values (the pending authorization request, the session)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._serializers: dict[str, URLSafeTimedSerializer] = {}  # one per purpose, made once

    def dumps(self, purpose: str, value: Any) -> str:
        return self._serializer(purpose).dumps(value)

    def loads(self, purpose: str, token: str, max_age: int) -> Any | None:
        try:
            return self._serializer(purpose).loads(token, max_age=max_age)
        except (BadSignature, SignatureExpired):
            return None

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        serializer = self._serializers.get(purpose)
        if serializer is None:  # a handful of purposes, fixed in the code
            serializer = self._serializers[purpose] = URLSafeTimedSerializer(self._secret, salt=purpose)
        return serializer


async def session_user(request: Request, signer: Signer, users: UserStore, ttl: int) -> User | None:
    """The person the sign-in cookie names (the consent pages' and /admin's), or None: no
    cookie, a bad or expired signature, a removed user, or a cookie signed before the user's
    password changed (its `session_version` is older; on every replica)."""
    data = signer.loads("session", request.cookies.get(SESSION_COOKIE, ""), ttl)
    if not isinstance(data, dict):
        return None
    request.state.authgate_session = data  # read once a request (routes/authorize.py `_auth_time`)
    user = await users.get_user(str(data.get("uid")))
    if user is None or data.get("v", 0) != user.session_version:
        return None
    return user


def csrf_token(request: Request) -> str:
    """Double-submit token: reuse the cookie's value or mint one (set by `set_cookies`)."""
    existing = request.cookies.get(CSRF_COOKIE)
    return existing if existing and len(existing) >= 32 else secrets.token_urlsafe(32)


def csrf_ok(request: Request, form_value: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    return bool(cookie and form_value and hmac.compare_digest(cookie, form_value))


def set_cookie(response: Response, name: str, value: str, *, secure: bool, path: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=path or "/", secure=secure, httponly=True, samesite="lax")


def page_headers(nonce: str, form_targets: list[str]) -> dict[str, str]:
    # form-action must also allow where the form's 303 lands (Chrome checks redirects too)
    form_action = " ".join(["'self'", *form_targets])
    csp = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
