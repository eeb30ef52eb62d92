"""When a write is on the disk, relative to the answer that depends on it (issue 18, group
commit). A backend-neutral contract between the HTTP adapter and a store:

- `answer_after_flush()`, around a request's handler: the writes it makes commit at once (other
  requests see them; a `kill -9` loses none of them: they are in the operating system's hands)
  but share one flush to the disk, awaited when the handler returns and before its answer is
  sent. A store that flushes every commit on its own never registers anything here, and the
  scope then costs nothing.
- `relaxed()`, around a write nobody is answered about (rate-limit counts, the connection
  timeline's notes): it commits without waiting for a flush; the next flush (anyone's) or the
  next checkpoint takes it to the disk.
- outside both (the CLI, background work, the MCP path): a write waits for its own flush before
  it returns, as before.

What a power loss can lose: nothing that was answered. See docs/deployment.md, "What a crash
can lose", and `store/sql/sqlite_direct.py` for the SQLite backend that uses this.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

__all__ = ["FlushScope", "answer_after_flush", "current_scope", "is_relaxed", "relaxed"]


class FlushScope:
    """One request's pending flush: `pending` is set by a store whose commit is not on the disk
    yet, and awaited once when the request's handler returns."""

    __slots__ = ("open", "pending")

    def __init__(self) -> None:
        self.open = True  # a task started inside a request outlives it: after, it flushes on its own
        self.pending: Callable[[], Awaitable[None]] | None = None


_SCOPE: contextvars.ContextVar[FlushScope | None] = contextvars.ContextVar("authgate_flush_scope", default=None)
_RELAXED: contextvars.ContextVar[bool] = contextvars.ContextVar("authgate_flush_relaxed", default=False)


def current_scope() -> FlushScope | None:
    """The request's scope while its handler runs, else None."""
    scope = _SCOPE.get()
    return scope if scope is not None and scope.open else None


def is_relaxed() -> bool:
    return _RELAXED.get()


@contextlib.asynccontextmanager
async def answer_after_flush() -> AsyncIterator[None]:
    """Run a request's handler; when it returns, wait until what it committed is on the disk
    (one flush for all of it, shared with concurrent requests). When it raises, the flush is
    still awaited before the error goes on to become an answer (a failed flush then stays
    unsaid: the first error is the one to report); a cancellation does not wait."""
    scope = FlushScope()
    token = _SCOPE.set(scope)
    try:
        yield
    except Exception:
        _SCOPE.reset(token)
        scope.open = False
        if scope.pending is not None:
            with contextlib.suppress(Exception):
                await scope.pending()
        raise
    finally:
        if scope.open:
            _SCOPE.reset(token)
            scope.open = False
    if scope.pending is not None:
        await scope.pending()


@contextlib.contextmanager
def relaxed() -> Iterator[None]:
    token = _RELAXED.set(True)
    try:
        yield
    finally:
        _RELAXED.reset(token)
