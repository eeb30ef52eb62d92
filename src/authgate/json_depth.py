"""JSON request bodies with bounded nesting.

Python's json parser recurses once per `[` or `{`: 32 000 nested brackets raise RecursionError
(a 500 with a traceback), and a few hundred levels that do parse can still overflow whatever
walks the value next (an encoder, a validator, the audit trail). Every JSON request body
authgate parses (`/register`, and `/mcp` in the policy layer) goes through `loads`, which
refuses both with `TooDeep`. The limit is serde_json's default.
"""

from __future__ import annotations

import json
from typing import Any

from authgate.errors import AuthgateError

MAX_DEPTH = 128

_PLAIN = json.JSONDecoder()
_OPENERS = frozenset(b"{[")


class TooDeep(AuthgateError):
    """The body nests deeper than MAX_DEPTH. Not a ValueError on purpose: callers that treat
    a ValueError as "not JSON, pass it on" must not pass this one on unjudged."""


def loads(raw: bytes, *, decoder: json.JSONDecoder = _PLAIN, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads(raw)` with `decoder`; raises TooDeep past `max_depth` levels, and what
    json.loads raises (ValueError, UnicodeDecodeError) for a body that is not JSON."""
    # as json.loads does; a body opening with `{` or `[` then a non-NUL byte is UTF-8 (no BOM,
    # not UTF-16/32), which json.detect_encoding would answer after a few more checks
    plain = len(raw) > 1 and raw[0] in _OPENERS and raw[1] != 0
    text = raw.decode("utf-8" if plain else json.detect_encoding(raw), "surrogatepass")
    try:
        value = decoder.decode(text)
    except RecursionError:
        raise TooDeep(f"the body is nested too deeply (more than {max_depth} levels)") from None
    if text.count("[") + text.count("{") > max_depth and _deeper_than(value, max_depth):
        raise TooDeep(f"the body is nested too deeply (more than {max_depth} levels)")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Level by level, without recursion; only containers are visited."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True
