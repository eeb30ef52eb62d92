"""Every error authgate raises, in one tree.

    AuthgateError
    ├── ConfigError                  a setting is wrong: names it, says why and how to fix it
    ├── StoreError                   the database failed or is out of date
    │   └── StoreUnavailable         it cannot answer now: a lost or broken connection, a lock
    │                                held past the busy timeout (store/sql/database.py); the
    │                                server answers 503 with Retry-After (server/store_failures.py)
    ├── FetchError                   an outbound fetch (CIMD document) was refused or failed
    ├── Unreachable                  an outbound HTTP request got no answer (DNS, TCP, TLS,
    │                                timeout): httpx's exceptions become it in one place,
    │                                `authgate.httpx_errors` (aiohttp's, the gateway's only
    │                                client, become UpstreamError in gateway/http/upstream.py)
    ├── SealError                    sealed data does not open (oauth/sealing.py)
    ├── GatewayError                 JSON-RPC-level errors of the gateway, each with its code and
    │                                HTTP status (gateway/errors.py: parse, header mismatch,
    │                                session not found, upstream refused/timeout/exited, …)
    ├── ClientGone                   the client hung up before its body arrived: nothing to
    │                                answer (gateway/body.py)
    ├── AmbiguousBody                a JSON object names one member twice (policy/operations.py;
    │                                also a ValueError, as json.loads' own refusals are)
    ├── TooDeep                      a JSON body nests past 128 levels (json_depth.py)
    ├── KnowledgeBaseError           the built-in knowledge base (kb/errors.py)
    │   └── SkippedFile              a file the indexer will not read (kb/indexer.py)
    ├── UpstreamIdpError             proxy mode's upstream IdP refused or failed (idp/proxy/upstream_idp.py)
    ├── OutboundAuthError            authgate as an OAuth client refused a remote's metadata or got no
    │                                token (outbound/errors.py)
    ├── UpstreamTokenError           `authgate.upstream_token(ctx)` has no upstream IdP token to give
    │   ├── NoUpstreamToken          none for this caller (not proxy mode, no sign-in upstream, a
    │   │                            machine client, expired without a refresh token, unsealable)
    │   ├── UpstreamGrantEnded       the IdP refused the refresh (grant ended): the caller's
    │   │                            authgate grant is revoked too; the person signs in again
    │   └── UpstreamTokenUnavailable the IdP cannot renew it now (unreachable, 5xx, 429, or it
    │                                refused authgate's own client): retry after `retry_after`
    ├── ConnectionRequired           a call needs the caller's connection to a third-party
    │                                provider (authgate.connections): `url` is the connect link
    │                                to open, with its `elicitation_id` and the `scopes` asked
    ├── ConnectLinkError             the connect page refused: an unknown, expired or used link or
    │                                state, another person's link, another browser's callback;
    │                                its page's `status` (connections/errors.py)
    ├── RequestStateRefused          a retry's requestState is not authgate's for this person,
    │                                client and request, or expired or used: JSON-RPC -32602
    │                                (connections/request_state.py)
    ├── SignInError                  the doctor could not play a sign-in: what it saw, the fix
    │                                (doctor/login.py)
    ├── RedirectError                an OAuthError to deliver to a verified redirect URI, with
    │                                the request's `state` (oauth/authorize.py)
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
        ├── InvalidDpopProof         invalid_dpop_proof        (RFC 9449 §5, §7.1)
        │   └── UseDpopNonce         use_dpop_nonce, with its DPoP-Nonce header (RFC 9449 §8, §9)
        └── InvalidToken             invalid_token             (RFC 6750, at the resource)
            └── InvalidRegistrationToken  a wrong or missing RFC 7592 registration access token
                                          (oauth/registration_management.py)

Branches that belong to one part are declared in that part, listed here so the tree stays
whole. An OAuthError knows its status and its own headers (`headers()`: `Retry-After` on 429
and 503, RFC 9110 §10.2.3; `WWW-Authenticate` on a 401 `invalid_client` after HTTP Basic,
RFC 6749 §5.2). Each family of errors is rendered by one function: OAuth JSON bodies by
`authgate.error_responses.oauth_error` (every route, the guard's 503, the IdP mirror's),
error redirects by `authgate.oauth.authorize.error_redirect` (RFC 6749 §4.1.2.1 `state`,
RFC 9207 `iss`), JSON-RPC errors by `authgate.gateway.errors.send_error`, bearer challenges
by `authgate.guard.challenge`.

One exception stays outside on purpose: `server/http_protocol.py`'s `_TooManyHeaders`, raised
from the HTTP parser's callback and caught in the same module, never seen beyond it.
Pydantic carries `config.problems.Refusals` (a ValueError) from a validator to `ConfigError`.
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


class StoreUnavailable(StoreError):
    """The database cannot answer right now (a lost or broken connection, a lock held past the
    busy timeout, no free connection in the pool); asking again shortly may work. The
    transaction did not commit, unless the connection was lost during its COMMIT.
    `reconnect`: a fresh connection may succeed at once (a lost connection), as opposed to a
    wait that was already made (the busy timeout, the pool's timeout)."""

    def __init__(self, message: str, *, reconnect: bool = False) -> None:
        self.reconnect = reconnect
        super().__init__(message)


class FetchError(AuthgateError):
    """An outbound fetch was refused by policy or failed."""


class Unreachable(AuthgateError):
    """An outbound HTTP request got no answer: DNS, TCP, TLS, a timeout, a broken exchange.
    `what` names the request (`GET https://…`), `kind` the client library's name for the
    failure (`ConnectError`), `detail` its message; `timed_out` when it was a timeout."""

    def __init__(self, what: str, kind: str, detail: str = "", *, timed_out: bool = False) -> None:
        self.what, self.kind, self.detail, self.timed_out = what, kind, detail, timed_out
        super().__init__(f"{what}: {kind}: {detail[:160] or 'no answer'}")


class UpstreamTokenError(AuthgateError):
    """Proxy mode: the caller's upstream IdP access token cannot be given (`authgate.upstream_token`).
    The message says why and what the person or the operator does next; it never holds a token."""


class NoUpstreamToken(UpstreamTokenError):
    """There is no upstream IdP token for this caller."""


class UpstreamGrantEnded(UpstreamTokenError):
    """The IdP refused to renew the caller's token: the grant ended there (revoked, expired).
    authgate revoked the caller's own grant as well (as its refresh does); they sign in again."""


class UpstreamTokenUnavailable(UpstreamTokenError):
    """The IdP cannot renew the caller's token now: worth a retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: int = 30) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ConnectionRequired(AuthgateError):
    """The caller has no usable connection to `provider` (none, ended, or without `scopes`):
    the person opens `url`, authgate's connect page (absolute, made for this user and client),
    signs in at the provider there, and retries. MCP clients get it as a URL elicitation
    (`elicitation_id`) or a tool error naming the page. Holds no token."""

    def __init__(self, provider: str, url: str, elicitation_id: str, scopes: tuple[str, ...] = ()) -> None:
        self.provider = provider
        self.url = url
        self.elicitation_id = elicitation_id
        self.scopes = tuple(scopes)
        super().__init__(f"this needs your connection to {provider}: open {url} to connect, then try again")


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

    def headers(self, *, basic_attempted: bool = False) -> dict[str, str]:
        """The HTTP headers this error's answer carries (`basic_attempted`: the client sent
        HTTP Basic credentials)."""
        return {}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status = 401

    def headers(self, *, basic_attempted: bool = False) -> dict[str, str]:
        # RFC 6749 §5.2: a client that tried HTTP Basic is answered with that scheme's challenge
        return {"WWW-Authenticate": 'Basic realm="authgate"'} if basic_attempted else {}


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

    def headers(self, *, basic_attempted: bool = False) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}  # RFC 9110 §10.2.3


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

    def headers(self, *, basic_attempted: bool = False) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}  # RFC 6585 §4, RFC 9110 §10.2.3


class InvalidToken(OAuthError):
    error = "invalid_token"
    status = 401


class InvalidDpopProof(OAuthError):
    """A DPoP proof is missing, malformed or does not match the request (oauth/dpop.py): 400 at
    the token endpoint; the guard answers it as a 401 with its DPoP challenge."""

    error = "invalid_dpop_proof"


class UseDpopNonce(InvalidDpopProof):
    """The proof lacks the server's current nonce; the answer carries the one to use."""

    error = "use_dpop_nonce"

    def __init__(self, description: str = "", *, nonce: str) -> None:
        self.nonce = nonce
        super().__init__(description)

    def headers(self, *, basic_attempted: bool = False) -> dict[str, str]:
        return {"DPoP-Nonce": self.nonce}  # RFC 9449 §8


__all__ = [
    "AccessDenied",
    "AuthgateError",
    "ConfigError",
    "ConnectionRequired",
    "FetchError",
    "InvalidClient",
    "InvalidClientMetadata",
    "InvalidDpopProof",
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
    "StoreUnavailable",
    "TemporarilyUnavailable",
    "UnauthorizedClient",
    "Unreachable",
    "UnsupportedGrantType",
    "UnsupportedResponseType",
    "UseDpopNonce",
]
