"""The outbound client's branch of the error tree (listed in `authgate.errors`)."""

from __future__ import annotations

from authgate.errors import AuthgateError


class OutboundAuthError(AuthgateError):
    """authgate's outbound OAuth client refused what a remote advertised (metadata that does not
    match, a URL it may not fetch, a wrong `state` or `iss`) or could not obtain a token.
    `error` is the remote AS's OAuth error code when it gave one."""

    def __init__(self, message: str, *, error: str | None = None) -> None:
        self.error = error
        super().__init__(message)
