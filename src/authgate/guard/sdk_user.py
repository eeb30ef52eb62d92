"""The caller as the `mcp` SDK's own types, for MCP apps written with the SDK: its
`AuthenticatedUser` in `scope["user"]` (so `get_access_token()` and `request.user` work as
usual) and Starlette's `AuthCredentials` in `scope["auth"]`.

Built once per token holder (pydantic models cost more than the rest of the guard), and only
for apps that can use them (`AuthgateApp(sdk_user=…)`): the HTTP gateway and the stdio bridge
do not, and never import the SDK for it.
"""

from __future__ import annotations

from typing import Any

from authgate.guard.identity import Identity

__all__ = ["SdkUsers"]

MAX_VIEWS = 10_000


class SdkUsers:
    def __init__(self, max_views: int = MAX_VIEWS) -> None:
        self._views: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._max = max_views
        # the last caller's: the verifier's cache hands the same Identity for the same token
        self._last: tuple[Identity | None, dict[str, Any]] = (None, {})

    def view(self, identity: Identity) -> dict[str, Any]:
        """`{"user": AuthenticatedUser, "auth": AuthCredentials}` for `identity`."""
        last, view = self._last
        if identity is last:
            return view
        view = self._view(identity)
        self._last = (identity, view)
        return view

    def _view(self, identity: Identity) -> dict[str, Any]:
        key = (identity.subject, identity.client_id, identity.expires_at, identity.scopes, identity.audience)
        view = self._views.get(key)
        if view is None:
            view = _build(identity)
            if len(self._views) >= self._max:
                self._views.clear()  # crude but bounded; rebuilt on demand
            self._views[key] = view
        return view


def _build(identity: Identity) -> dict[str, Any]:
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken
    from starlette.authentication import AuthCredentials

    sdk_token = AccessToken(
        token="",
        client_id=identity.client_id,
        scopes=list(identity.scopes),
        expires_at=identity.expires_at,
        resource=identity.audience[0],
        subject=identity.subject,
        claims=identity.claims,
    )
    return {"user": AuthenticatedUser(sdk_token), "auth": AuthCredentials(list(identity.scopes))}
