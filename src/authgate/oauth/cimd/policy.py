"""The knobs of CIMD resolution, shared by fetching, caching and validating."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CimdPolicy:
    allow_loopback_http: bool = False  # TESTING ONLY: permit http://127.0.0.1 / localhost docs
    timeout: float = 5.0  # total time budget for the fetch incl. DNS and redirects
    max_bytes: int = 65536
    min_cache_seconds: int = 60
    max_cache_seconds: int = 86400
    default_cache_seconds: int = 300
    max_redirects: int = 3  # 0 = refuse redirects (draft -01 says MUST NOT follow them)
    negative_cache_seconds: int = 30  # a failing client_id is not refetched sooner than this
    max_cache_entries: int = 1024  # bounds memory when callers invent many client_ids
