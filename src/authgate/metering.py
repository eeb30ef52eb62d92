"""Where every layer reports what the metrics count, without importing a metrics library.

`meter` is None unless metrics are on (settings `metrics_listen` / `metrics_on_main`):
`server/metrics.py` installs its `Metrics` here when the app starts and removes it when the
app stops. A reporting site reads it once and does nothing more when it is None, so metrics
off cost one global read:

    if (m := metering.meter) is not None:
        m.auth("invalid_token")

The sites pass values from fixed sets (the names below, an error class's `reason`, a route
name); the meter maps anything else to "other", so no label value comes from a request.
A module of its own, importing nothing, so the core and every adapter may report.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["AUTH_DECISIONS", "TOKEN_OUTCOMES", "Meter", "install", "meter"]

# the gate's verdict on a request to /mcp (server/gate.py)
AUTH_DECISIONS = (
    "allowed",  # a valid token, and the policy let every operation through
    "anonymous",  # no token, an operation anonymous_operations allows
    "no_token",  # 401 without a bearer token
    "invalid_token",  # 401 invalid_token
    "insufficient_scope",  # 403: the token holds none of the resource's scopes
    "operation_refused",  # 403 (or a tool error): the policy refused an operation
    "origin_refused",  # 403: a browser Origin not allowed
    "host_refused",  # 421: a Host that is neither the public one nor loopback
    "unavailable",  # 503: the token could not be checked now
)
# a bearer token met by the gate: from the verifier's cache, or verified now and how
TOKEN_OUTCOMES = ("cache_hit", "valid", "invalid", "insufficient_scope", "unavailable")


class Meter(Protocol):
    """What the layers report (server/metrics.py's `Metrics` implements it)."""

    def http(self, path: str | None, status: int | None, seconds: float) -> None:
        """A request answered (server/logs.py): its path becomes a route template."""

    def auth(self, decision: str) -> None:
        """The gate's verdict, one of AUTH_DECISIONS."""

    def token(self, outcome: str) -> None:
        """A bearer token checked, one of TOKEN_OUTCOMES."""

    def flow(self, route: str, request: Any, response: Any) -> None:
        """An OAuth endpoint answered (server/app.py): `route` its name, the Starlette request
        and response."""

    def upstream(self, seconds: float) -> None:
        """The upstream began its answer (HTTP: the response head; stdio: the child's response)."""

    def upstream_error(self, reason: str) -> None:
        """An upstream failure, by its error's `reason` (gateway/errors.py)."""

    def store(self, write: bool, seconds: float, failed: bool) -> None:
        """One store transaction (store/sql/database.py)."""


meter: Meter | None = None


def install(new: Meter | None) -> None:
    """Make `new` the process's meter (None: metrics off)."""
    global meter
    meter = new
