"""httpx's exceptions translated into authgate's error tree, in one place (as httpx itself maps
httpcore's in `map_httpcore_exceptions`).

Every outbound request made with httpx (the CIMD fetch, proxy mode's upstream IdP, external
IdPs' introspection and discovery, `idp check`, the doctor) runs inside `translated(what)`: a
request that gets no HTTP answer raises `errors.Unreachable`, whatever httpx class it was
(DNS, connect, TLS, timeout, a broken exchange, too many redirects), and the caller says what
that means where it is (a 503, a FetchError, a failed check). No other module names httpx's
exception classes. An HTTP answer, whatever its status, is the caller's to judge.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from authgate.errors import Unreachable


def unreachable(exc: httpx.HTTPError, what: str) -> Unreachable:
    """The tree's error for an httpx failure of the request `what` (e.g. `GET https://…`)."""
    return Unreachable(what, type(exc).__name__, str(exc), timed_out=isinstance(exc, httpx.TimeoutException))


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run an httpx request; its failure to get an answer is raised as `Unreachable`."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise unreachable(exc, what) from None


__all__ = ["translated", "unreachable"]
