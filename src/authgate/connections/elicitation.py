"""How an MCP client is asked for a connection: the URL elicitation of its revision, or a tool
error naming the connect page (docs/connections.md).

A call needs the person's connection to a provider (`ConnectionRequired`, errors.py: the
connect link `url`, its `elicitation_id`). What the client gets depends on the request's
protocol revision and on whether the client declared the `elicitation.url` capability
(per request in `_meta` from 2026-07-28; in `initialize` before):

| the request                                  | the answer                                          |
| -------------------------------------------- | --------------------------------------------------- |
| 2026-07-28 or later, `elicitation.url`       | `InputRequiredResult`: `inputRequests` holds one     |
|                                              | `elicitation/create` (mode url), `requestState` is   |
|                                              | authgate's, sealed (request_state.py)               |
| 2025-11-25 (to before 2026-07-28), `url`     | JSON-RPC error -32042 with `data.elicitations`       |
| older, or no `elicitation.url`               | a tool result with `isError` and the link in its text|
| (not a tool call, and not askable as above)  | a JSON-RPC error (-32603) naming the page           |

MCP 2026-07-28 client/elicitation: servers MUST NOT send a mode the client did not declare;
the URL elicitation carries no `elicitationId` there (removed in 2026-07-28, changelog item
11: authgate's own id travels in its requestState). MCP 2025-11-25 client/elicitation:
-32042's elicitations MUST be URL mode and carry `elicitationId`.

The signal. An app or upstream asks for a connection at run time with ONE JSON-RPC error to
its `tools/call` (library mode's `authgate.connection_token` raises it for the tool):

    {"code": -32012, "message": "…", "data": {"connectionRequired": {"provider": "github", "scopes": ["repo"]}}}

-32012 lies in the implementation-defined band (-32000..-32019, MCP 2026-07-28 basic §Error
codes). authgate turns it into the answer above, with a connect link of its own making: a
URL the upstream sends is never used (it would be a phishing link in authgate's name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from authgate.errors import ConnectionRequired

__all__ = [
    "INPUT_KEY_PREFIX",
    "SIGNAL_CODE",
    "Ask",
    "Signal",
    "declined_result",
    "how_to_ask",
    "input_key",
    "input_required",
    "link_error",
    "no_person_answer",
    "read_signal",
    "request_version",
    "retry_result",
    "signal_error",
    "tool_error_result",
    "unavailable",
    "url_declared",
    "url_elicitation_error",
]

MODERN = "2026-07-28"  # per-request _meta, multi round-trip requests
URL_MODE_SINCE = "2025-11-25"  # URL mode elicitation and -32042
LEGACY_DEFAULT = "2025-03-26"  # a request naming no revision (Streamable HTTP: no header → 2025-03-26)
URL_ELICITATION_REQUIRED = -32042
INVALID_PARAMS = -32602
SIGNAL_CODE = -32012
SIGNAL_KEY = "connectionRequired"
INPUT_KEY_PREFIX = "authgate.connect."
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PROVIDER = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
_MAX_SCOPES = 50

Ask = Literal["input_required", "url_error", "tool_error", "link_error"]
MRTR_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})


@dataclass(frozen=True, slots=True)
class Signal:
    """An app's or upstream's request for the caller's connection to `provider`."""

    provider: str
    scopes: tuple[str, ...] = ()


def signal_error(provider: str, scopes: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON-RPC `error` object of the signal (what `authgate.connection_token` raises)."""
    return {
        "code": SIGNAL_CODE,
        "message": f"this needs the caller's connection to {provider}",
        "data": {SIGNAL_KEY: {"provider": provider, "scopes": list(scopes)}},
    }


def read_signal(error: Any) -> Signal | None:
    """The signal in a JSON-RPC `error` object, or None (any other error passes untouched)."""
    if not isinstance(error, dict) or error.get("code") != SIGNAL_CODE:
        return None
    data = error.get("data")
    asked = data.get(SIGNAL_KEY) if isinstance(data, dict) else None
    if not isinstance(asked, dict):
        return None
    provider, scopes = asked.get("provider"), asked.get("scopes", [])
    if not isinstance(provider, str) or not _PROVIDER.fullmatch(provider):
        return None
    if not isinstance(scopes, list) or len(scopes) > _MAX_SCOPES:
        return None
    if not all(isinstance(s, str) and _SCOPE.fullmatch(s) for s in scopes):
        return None
    return Signal(provider, tuple(scopes))


def request_version(params: Any, header: str | None) -> str:
    """The request's protocol revision: its `_meta` (2026-07-28), else the MCP-Protocol-Version
    header, else 2025-03-26 (what Streamable HTTP assumes without the header)."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    version = meta.get(META_VERSION) if isinstance(meta, dict) else None
    for candidate in (version, header):
        if isinstance(candidate, str) and _DATE.fullmatch(candidate):
            return candidate
    return LEGACY_DEFAULT


def request_capabilities(params: Any) -> dict[str, Any] | None:
    """A 2026-07-28 request's own client capabilities (`_meta`), or None."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    caps = meta.get(META_CAPABILITIES) if isinstance(meta, dict) else None
    return caps if isinstance(caps, dict) else None


def url_declared(capabilities: Any) -> bool:
    """Did the client declare URL mode elicitation (`elicitation.url`)? An empty `elicitation`
    object means form mode only (MCP 2025-11-25 / 2026-07-28 client/elicitation §Capabilities)."""
    elicitation = capabilities.get("elicitation") if isinstance(capabilities, dict) else None
    return isinstance(elicitation, dict) and isinstance(elicitation.get("url"), dict)


def how_to_ask(version: str, capabilities: Any, method: str = "tools/call") -> Ask:
    """input_required only where MRTR allows it (MCP 2026-07-28 mrtr §Supported Requests); a
    tool error only for a tool call; any other request that cannot be asked gets `link_error`."""
    if url_declared(capabilities) and URL_MODE_SINCE <= version < MODERN:
        return "url_error"
    if url_declared(capabilities) and version >= MODERN and method in MRTR_METHODS:
        return "input_required"
    return "tool_error" if method == "tools/call" else "link_error"


def input_key(provider: str) -> str:
    """authgate's key in `inputRequests` / `inputResponses` (an upstream's never starts so)."""
    return INPUT_KEY_PREFIX + provider


def _message(required: ConnectionRequired) -> str:
    return (
        f"Connect your {required.provider} account to authgate to continue: open the link, sign in there, then retry."
    )


def input_required(request_id: Any, required: ConnectionRequired, state: str) -> dict[str, Any]:
    """2026-07-28: the InputRequiredResult asking for the connection."""
    request = {
        "method": "elicitation/create",
        "params": {"mode": "url", "url": required.url, "message": _message(required)},
    }
    result = {
        "resultType": "input_required",
        "inputRequests": {input_key(required.provider): request},
        "requestState": state,
    }
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def url_elicitation_error(request_id: Any, required: ConnectionRequired) -> dict[str, Any]:
    """2025-11-25: -32042 URLElicitationRequiredError with the one URL elicitation."""
    elicitation = {
        "mode": "url",
        "elicitationId": required.elicitation_id,
        "url": required.url,
        "message": _message(required),
    }
    error = {
        "code": URL_ELICITATION_REQUIRED,
        "message": "This request requires more information.",
        "data": {"elicitations": [elicitation]},
    }
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _tool_result(request_id: Any, text: str, version: str) -> dict[str, Any]:
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if version >= MODERN:
        result["resultType"] = "complete"
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def tool_error_result(request_id: Any, required: ConnectionRequired, version: str) -> dict[str, Any]:
    """Older revisions, or no `elicitation.url`: a tool error the person (or the model) reads."""
    text = (
        f"This tool needs your {required.provider} account connected to authgate. "
        f"Open {required.url} in a browser, sign in there, then call the tool again."
    )
    return _tool_result(request_id, text, version)


def retry_result(request_id: Any, provider: str, version: str) -> dict[str, Any]:
    """Connected now, but this call went without the token: the person calls the tool again."""
    return _tool_result(request_id, f"Your {provider} account is connected now: call the tool again.", version)


def no_person_answer(request_id: Any, provider: str, version: str, method: str) -> dict[str, Any]:
    """A machine client (client_credentials, a workload): no person to connect, no link made."""
    text = f"This needs a person's connection to {provider}; a machine client has none (sign in as a person)."
    if method == "tools/call":
        return _tool_result(request_id, text, version)
    data = {"reason": "connection_needs_a_person", "provider": provider}
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32603, "message": text, "data": data}}


def declined_result(request_id: Any, provider: str, version: str) -> dict[str, Any]:
    """The person declined (or cancelled) the connection: the call ends as a tool error."""
    return _tool_result(request_id, f"Not connected to {provider}: the connection was declined.", version)


def link_error(request_id: Any, required: ConnectionRequired) -> dict[str, Any]:
    """A request that is not a tool call and cannot carry an elicitation: an error naming the page."""
    data = {"reason": "connection_required", "provider": required.provider, "url": required.url}
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32603, "message": str(required), "data": data}}


def unavailable(request_id: Any) -> dict[str, Any]:
    """The provider cannot renew the person's token now (unreachable, 5xx): retry shortly."""
    message = "authgate cannot renew your connection at the provider now; try again shortly"
    data = {"reason": "connection_unavailable", "retryable": True}
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32603, "message": message, "data": data}}


def invalid_params(request_id: Any, message: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": INVALID_PARAMS, "message": f"Invalid params: {message}"},
    }
