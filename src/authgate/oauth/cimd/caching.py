"""How long a CIMD document is kept (HTTP caching, RFC 9111), and the bounded cache keeping it.

Failures are cached too (`negative_cache_seconds`), so a client_id that fails is not refetched
per request; entries are bounded (`max_cache_entries`), the oldest insertion going first, so
callers inventing client_ids cannot grow memory.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from authgate.errors import FetchError, InvalidClientMetadata
from authgate.oauth.cimd.policy import CimdPolicy

if TYPE_CHECKING:
    import httpx


def cache_seconds(headers: httpx.Headers, now: float, policy: CimdPolicy) -> float:
    """Freshness from Cache-Control / Expires (RFC 9111 §4.2.1), clamped to the policy bounds.
    `no-store`/`no-cache` still get the minimum, so a client cannot make us refetch per request."""
    directives: dict[str, str] = {}
    for item in headers.get("cache-control", "").split(","):
        name, _, value = item.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    ttl: float = policy.default_cache_seconds
    if "no-store" in directives or "no-cache" in directives:
        ttl = 0
    elif "max-age" in directives:
        ttl = _int_or_zero(directives["max-age"]) - _int_or_zero(headers.get("age", "0"))
    elif "expires" in headers:
        expires = _http_date(headers["expires"])  # an invalid Expires means "already expired"
        ttl = 0 if expires is None else expires - (_http_date(headers.get("date", "")) or now)
    return float(min(max(ttl, policy.min_cache_seconds), policy.max_cache_seconds))


def _int_or_zero(text: str) -> int:
    return int(text) if text.strip().isdigit() else 0  # a malformed max-age means stale


def _http_date(text: str) -> float | None:
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True, slots=True)
class Entry:
    """A validated document or the failure to get one, until `expires`."""

    expires: float
    document: dict[str, Any] | None = None
    error: FetchError | InvalidClientMetadata | None = None

    def result(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error.with_traceback(None)
        assert self.document is not None
        return copy.deepcopy(self.document)  # callers may mutate; the cache must not change


class DocumentCache:
    """Entries by client_id, at most `max_entries`; the oldest insertion is evicted first."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: dict[str, Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def fresh(self, client_id: str, now: float) -> Entry | None:
        entry = self._entries.get(client_id)
        return entry if entry is not None and entry.expires > now else None

    def put(self, client_id: str, entry: Entry) -> None:
        self._entries.pop(client_id, None)
        while len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]  # bounded: evict the oldest insertion
        self._entries[client_id] = entry
