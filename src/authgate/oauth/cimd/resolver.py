"""`CimdResolver`: an HTTPS `client_id` resolved to its validated metadata.

Fetched without SSRF (fetching.py), checked (validating.py), and kept by HTTP caching rules,
failures included (caching.py); concurrent resolutions of one URL share one fetch.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from authgate.errors import FetchError, InvalidClientMetadata
from authgate.oauth.cimd.caching import DocumentCache, Entry, cache_seconds
from authgate.oauth.cimd.policy import CimdPolicy
from authgate.oauth.cimd.validating import client_id_problem, is_cimd_client_id, validate_metadata

if TYPE_CHECKING:
    from authgate.oauth.cimd.fetching import DnsResolver, PinnedFetcher


class CimdResolver:
    """Fetches, validates and caches CIMD documents. One per process; `aclose()` on shutdown."""

    def __init__(
        self, policy: CimdPolicy, *, clock: Callable[[], float] = time.time,
        resolver: DnsResolver | None = None,  # default: the system's (fetching.system_dns)
        ssl_context: ssl.SSLContext | None = None,  # tests trust their own CA; default: certifi
    ) -> None:  # fmt: skip
        self._policy = policy
        self._clock = clock
        self._dns = resolver
        self._ssl_context = ssl_context
        self._pinned: PinnedFetcher | None = None  # made on the first fetch: httpx loads then, not at start
        self._cache = DocumentCache(policy.max_cache_entries)
        self._inflight: dict[str, asyncio.Task[Entry]] = {}

    def handles(self, client_id: str) -> bool:
        """Whether `client_id` is a CIMD URL under this resolver's policy (use this, not the bare
        `is_cimd_client_id`, so testing-mode http://127.0.0.1 client_ids are recognised too)."""
        return is_cimd_client_id(client_id, self._policy)

    def _fetcher(self) -> PinnedFetcher:
        if self._pinned is None:
            from authgate.oauth.cimd.fetching import PinnedFetcher, system_dns

            self._pinned = PinnedFetcher(self._policy, self._dns or system_dns, self._ssl_context)
        return self._pinned

    async def resolve(self, client_id: str) -> dict[str, Any]:
        """The validated metadata for `client_id`; raises FetchError or InvalidClientMetadata."""
        if problem := client_id_problem(client_id, self._policy):
            raise FetchError(f"CIMD client_id {client_id[:200]!r} {problem}")
        entry = self._cache.fresh(client_id, self._clock())
        if entry is not None:
            return entry.result()
        task = self._inflight.get(client_id)
        if task is None:  # coalesce: every concurrent caller awaits this one fetch
            task = asyncio.create_task(self._load(client_id))
            self._inflight[client_id] = task
            task.add_done_callback(lambda t: self._forget(client_id, t))
        return (await asyncio.shield(task)).result()

    def _forget(self, client_id: str, task: asyncio.Task[Entry]) -> None:
        if self._inflight.get(client_id) is task:
            del self._inflight[client_id]
        if not task.cancelled():
            task.exception()  # mark retrieved even if every waiter went away

    async def _load(self, client_id: str) -> Entry:
        try:
            document, headers = await self._fetcher().fetch(client_id)
            metadata = validate_metadata(document, client_id)
            now = self._clock()
            entry = Entry(now + cache_seconds(headers, now, self._policy), metadata)
        except (FetchError, InvalidClientMetadata) as exc:
            entry = Entry(self._clock() + self._policy.negative_cache_seconds, error=exc)
        self._cache.put(client_id, entry)
        return entry

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        if self._pinned is not None:
            await self._pinned.aclose()
