"""Start-up checks of the policy settings, called by the settings model's validators.

A `ValueError` raised here becomes a `ConfigError` naming the setting (see
`authgate.config.settings`). Kept free of the settings import: the settings module calls in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

TARGET_KINDS = ("tool", "resource", "prompt")
# Methods that name a tool, resource or prompt: they are made anonymous per target, never whole.
TARGETED_METHODS = ("tools/call", "resources/read", "resources/subscribe", "resources/unsubscribe",
                    "prompts/get", "completion/complete")
_METHOD = re.compile(r"[A-Za-z_]+(/[A-Za-z_]+)*")
_SCOPE_MAPS = ("tool_scopes", "resource_scopes", "prompt_scopes")


def map_from_text(value: Any) -> Any:
    """A map given as text (a CLI flag): a JSON object."""
    if isinstance(value, str):
        decoded = json.loads(value)  # a ValueError names the JSON problem
        if not isinstance(decoded, dict):
            raise ValueError('expected a JSON object, e.g. {"name": ["scope"]}')
        return decoded
    return value


def scope_token_problem(scope: Any) -> str | None:
    if not isinstance(scope, str) or not scope or any(c.isspace() or c in '"\\' for c in scope):
        return f"scope {scope!r} is not a valid scope-token (RFC 6749 §3.3)"
    if scope == "offline_access":
        return "offline_access is not a resource scope; authgate handles it itself"
    return None


def _check_scopes(scopes: Any, where: str) -> None:
    for scope in scopes:
        if (problem := scope_token_problem(scope)) is not None:
            raise ValueError(f"{where}: {problem}")


def _check_map(value: Mapping[str, list[str]], what: str) -> None:
    for key, scopes in value.items():
        if not key.strip():
            raise ValueError(f"an empty {what} name")
        _check_scopes(scopes, f"{what} {key!r}")


def known_scopes(data: Mapping[str, Any]) -> set[str]:
    """The scopes the embedded server offers: `scopes` and every scope an operation needs."""
    known = set(data.get("scopes") or ())
    for name in _SCOPE_MAPS:
        for scopes in (data.get(name) or {}).values():
            known.update(scopes)
    known.update(data.get("default_operation_scopes") or ())
    return known


def _check_known(scopes: list[str], data: Mapping[str, Any], where: str) -> None:
    known = known_scopes(data)
    for scope in scopes:
        if scope not in known:
            raise ValueError(f"{where}: scope {scope!r} is needed by no tool, resource or prompt and is "
                             "not in `scopes`; check its spelling")


def _check_anonymous(entries: list[str]) -> None:
    for entry in entries:
        kind, colon, name = entry.partition(":")
        if colon and kind in TARGET_KINDS:
            if not name.strip():
                raise ValueError(f"{entry!r} names no {kind}")
            continue
        if entry in TARGETED_METHODS:
            raise ValueError(f"{entry!r} would open every tool, resource or prompt; name each one as "
                             "tool:NAME, resource:URI or prompt:NAME")
        if not _METHOD.fullmatch(entry):
            raise ValueError(f"{entry!r} is neither tool:NAME, resource:URI, prompt:NAME nor a method name")


def check_setting(name: str, value: Any, data: Mapping[str, Any]) -> Any:
    """Validate one policy setting; `data` holds the settings validated before it."""
    if name in _SCOPE_MAPS:
        _check_map(value, name.removesuffix("_scopes"))
    elif name == "default_operation_scopes":
        _check_scopes(value, "default")
    elif name == "scope_implications":
        _check_map(value, "scope")
        for scope, implied in value.items():
            _check_known([scope, *implied], data, f"implication of {scope!r}")
    elif name == "anonymous_operations":
        _check_anonymous(value)
    elif name == "role_claim" and value is not None:
        if not value.strip() or any(not part for part in value.split(".")):
            raise ValueError(f"{value!r} is not a dotted claim path like realm_access.roles")
    elif name == "role_scopes" and value:
        if data.get("role_claim") is None:
            raise ValueError("role_scopes needs role_claim: the token claim that holds the roles")
        _check_map(value, "role")
        for role, scopes in value.items():
            _check_known(scopes, data, f"role {role!r}")
    return value
