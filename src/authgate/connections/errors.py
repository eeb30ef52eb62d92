"""The connections' branch of the error tree (listed in `authgate.errors`); `ConnectionRequired`
itself lives in `authgate.errors`, since every MCP-facing layer renders it."""

from __future__ import annotations

from authgate.errors import AuthgateError


class ConnectLinkError(AuthgateError):
    """The connect page or its callback refused a request: an unknown, expired, used or altered
    link or `state`, another person's link, another browser's callback. `status` is the HTTP
    status of the page that says so (404, 403 or 400); the message names no secret."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        self.status = status
        super().__init__(message)
