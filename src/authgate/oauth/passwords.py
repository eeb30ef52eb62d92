"""Password hashing with argon2id (argon2-cffi defaults follow RFC 9106's recommendations),
and `PasswordChecks`: verification off the event loop, a bounded number at once.

An argon2 verification is ~50 ms of CPU and 64 MiB of memory by design. Run on the event
loop, a dozen parallel guesses stall every other request (the attack pass measured `/health`
going from 23 ms to 156 ms median, 862 ms max under 12 attackers). So each verification runs
in a worker thread (argon2-cffi releases the GIL while hashing), and at most
`max_concurrent_password_checks` run at once: more wait their turn, so sign-in slows down
under attack while the rest of the server does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["PasswordChecks", "check_new_password", "hash_password", "verify_password"]

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so timing does not reveal valid usernames.
    Made once, on first use rather than at import (a hash is an argon2 run: ~0.1-0.4 s of CPU
    that every command importing this module paid); `PasswordChecks` makes it as it starts."""
    return _hasher.hash("authgate-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Blocking: on a request path use `PasswordChecks.verify`. No hash (an unknown user) costs
    the same as a real one, and is False."""
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def check_new_password(password: str) -> None:
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")


class PasswordChecks:
    """`verify_password` in at most `limit` worker threads of their own; callers beyond that
    wait (in the executor's queue, not on the event loop). One per server process."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self._executor = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="authgate-argon2")
        self._executor.submit(_dummy_hash)  # ready before the first unknown user, off the event loop
        self._open = threading.Event()
        self._open.set()
        self._state = threading.Condition()
        self._in_workers = 0

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Same answer as `verify_password` (same dummy hash for an unknown user, same cost)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._verify, stored_hash, password)

    @property
    def in_workers(self) -> int:
        """Verifications now inside a worker thread (running, or waiting on `hold`)."""
        with self._state:
            return self._in_workers

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Verifications reaching a worker meanwhile wait there until the block ends: the
        instrument that shows the event loop stays free while every worker is busy (the test
        of issue 11, Done-when 4), and a way to pause sign-in checks without stopping."""
        self._open.clear()
        try:
            yield
        finally:
            self._open.set()

    def wait_in_workers(self, count: int, timeout: float) -> bool:
        """Block (a thread, not the loop) until `count` verifications are in workers."""
        with self._state:
            return self._state.wait_for(lambda: self._in_workers >= count, timeout)

    def close(self) -> None:
        self._open.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _verify(self, stored_hash: str | None, password: str) -> bool:
        with self._state:
            self._in_workers += 1
            self._state.notify_all()
        try:
            self._open.wait()
            return verify_password(stored_hash, password)
        finally:
            with self._state:
                self._in_workers -= 1
