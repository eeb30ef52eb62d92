"""Every error authgate raises, in one tree.

    AuthgateError
    ├── ConfigError                  a setting is wrong: names it, says why and how to fix it
    ├── StoreError                   the database failed or is out of date
    ├── FetchError                   an outbound fetch (CIMD document) was refused or failed
    ├── SealError                    sealed data does not open (oauth/sealing.py)
    ├── GatewayError                 JSON-RPC-level errors of the gateway, each with its code and
    │                                HTTP status (gateway/errors.py: parse, header mismatch,
    │                                session not found, upstream refused/timeout/exited, …)
    ├── KnowledgeBaseError           the built-in knowledge base (kb/errors.py)
    └── OAuthError                   rendered as an RFC 6749 error response, keyed by `error`
        ├── InvalidRequest           invalid_request
        ├── InvalidClient            invalid_client            (401 at /token)
        ├── InvalidGrant             invalid_grant
        ├── UnauthorizedClient       unauthorized_client
        ├── UnsupportedGrantType     unsupported_grant_type
        ├── UnsupportedResponseType  unsupported_response_type
        ├── InvalidScope             invalid_scope
        ├── InvalidTarget            invalid_target            (RFC 8707)
        ├── AccessDenied             access_denied
        ├── ServerError              server_error
        ├── TemporarilyUnavailable   temporarily_unavailable
        ├── InvalidRedirectUri       invalid_redirect_uri      (RFC 7591)
        ├── InvalidClientMetadata    invalid_client_metadata   (RFC 7591)
        ├── SlowDown                 slow_down (rate limited; rendered as 429)
        └── InvalidToken             invalid_token             (RFC 6750, at the resource)

Branches that belong to one part are declared in that part, listed here so the tree stays
whole. OAuth errors are rendered in exactly one place per surface: JSON bodies in
`authgate.server.responses`, redirects in `authgate.oauth.authorize`, challenges in
`authgate.guard.challenge`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


class AuthgateError(Exception):
    """Base of every error authgate raises on purpose."""


@dataclass(frozen=True, slots=True)
class SettingProblem:
    """One refused setting: its name, what was wrong, and how to fix it."""

    setting: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"setting '{self.setting}': {self.problem}. Fix: {self.fix}"


class ConfigError(AuthgateError):
    """One or more settings are wrong: each problem names its setting, what was wrong, and the fix.

    `setting`, `problem` and `fix` are the first problem's; `problems` holds them all, so a
    config with several mistakes is refused once, listing every one (one line each).
    """

    def __init__(self, setting: str, problem: str, fix: str, *, more: Sequence[SettingProblem] = ()) -> None:
        self.setting = setting
        self.problem = problem
        self.fix = fix
        self.problems = (SettingProblem(setting, problem, fix), *more)
        lines = [str(p) for p in self.problems]
        super().__init__(lines[0] if len(lines) == 1 else f"{len(lines)} problems:\n  " + "\n  ".join(lines))

    @classmethod
    def of(cls, problems: Sequence[SettingProblem]) -> ConfigError:
        first, *rest = problems
        return cls(first.setting, first.problem, first.fix, more=rest)


class StoreError(AuthgateError):
    """The store could not do what was asked (connection, schema version, integrity)."""


class FetchError(AuthgateError):
    """An outbound fetch was refused by policy or failed."""


class OAuthError(AuthgateError):
    """An OAuth protocol error. `error` is the RFC code; `status` the HTTP status at /token."""

    error: ClassVar[str] = "server_error"
    status: ClassVar[int] = 400

    def __init__(self, description: str = "", *, uri: str | None = None) -> None:
        self.description = description
        self.uri = uri
        super().__init__(f"{self.error}: {description}" if description else self.error)

    def as_dict(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        if self.uri:
            body["error_uri"] = self.uri
        return body


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    error = "invalid_target"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class ServerError(OAuthError):
    error = "server_error"
    status = 500


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status = 503

    def __init__(self, description: str = "", *, retry_after: int = 30) -> None:
        self.retry_after = retry_after  # seconds, for the Retry-After header
        super().__init__(description)


class InvalidRedirectUri(OAuthError):
    error = "invalid_redirect_uri"


class InvalidClientMetadata(OAuthError):
    error = "invalid_client_metadata"


class SlowDown(OAuthError):
    error = "slow_down"
    status = 429

    def __init__(self, description: str = "", *, retry_after: int = 60) -> None:
        self.retry_after = retry_after
        super().__init__(description)


class InvalidToken(OAuthError):
    error = "invalid_token"
    status = 401


__all__ = [
    "AccessDenied",
    "AuthgateError",
    "ConfigError",
    "FetchError",
    "InvalidClient",
    "InvalidClientMetadata",
    "InvalidGrant",
    "InvalidRedirectUri",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "OAuthError",
    "ServerError",
    "SettingProblem",
    "SlowDown",
    "StoreError",
    "TemporarilyUnavailable",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UnsupportedResponseType",
]
