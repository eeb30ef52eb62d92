"""Client ID Metadata Documents: resolve an HTTPS `client_id` to its validated metadata.

draft-ietf-oauth-client-id-metadata-document (MCP 2025-11-25 authorization).

policy.py      `CimdPolicy`: time, size, redirect and cache bounds
fetching.py    the SSRF-guarded fetch: host resolved and vetted, only that address dialled
               (pinned, so DNS cannot rebind), every redirect hop re-vetted, size and time bounded
caching.py     freshness from Cache-Control / Expires (RFC 9111), failures cached, entries bounded
validating.py  the client_id URL's rules and the document's (no secret, DCR's redirect URI rules)
resolver.py    `CimdResolver`: the three together; concurrent fetches of one URL coalesced
"""

from typing import TYPE_CHECKING

from authgate import _lazy_exports
from authgate.oauth.cimd.caching import cache_seconds
from authgate.oauth.cimd.policy import CimdPolicy
from authgate.oauth.cimd.resolver import CimdResolver
from authgate.oauth.cimd.validating import is_cimd_client_id, validate_metadata

if TYPE_CHECKING:
    from authgate.oauth.cimd.fetching import DnsResolver, IPAddress, address_problem

__all__ = [
    "CimdPolicy",
    "CimdResolver",
    "DnsResolver",
    "IPAddress",
    "address_problem",
    "cache_seconds",
    "is_cimd_client_id",
    "validate_metadata",
]

# fetching.py brings httpx: loaded on the first fetch (or the first read of these names), not at start
__getattr__, __dir__ = _lazy_exports(
    __name__, dict.fromkeys(("DnsResolver", "IPAddress", "address_problem"), "authgate.oauth.cimd.fetching"), globals()
)
