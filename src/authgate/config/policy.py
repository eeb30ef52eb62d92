"""Policy section: the scopes each operation needs, roles, anonymous operations, lists and audit.

Single-field checks run as the fields' validators; those that need other settings (known
scopes, role_claim) are `policy_refusals`, run on the whole object (docs/policy.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from authgate.config.problems import Refusal

TARGET_KINDS = ("tool", "resource", "prompt")
# Methods that name a tool, resource or prompt: they are made anonymous per target, never whole.
TARGETED_METHODS = (
    "tools/call",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/get",
    "completion/complete",
)
_METHOD = re.compile(r"[A-Za-z_]+(/[A-Za-z_]+)*")
_SCOPE_MAPS = ("tool_scopes", "resource_scopes", "prompt_scopes")
_KNOWN = ("scopes", *_SCOPE_MAPS, "default_operation_scopes")  # what known_scopes reads
_MAP_FIX = " (on the command line: that JSON object)"

FIXES: dict[str, str] = {
    "tool_scopes": 'map tool names ("*" wildcards) to the scope-tokens they need, e.g. '
    '{"docs.create": ["docs.write"]}' + _MAP_FIX,
    "resource_scopes": 'map resource URIs ("*" wildcards) to the scope-tokens they need, e.g. '
    '{"file:///private/*": ["files.read"]}' + _MAP_FIX,
    "prompt_scopes": 'map prompt names ("*" wildcards) to the scope-tokens they need, e.g. '
    '{"summarize": ["docs.read"]}' + _MAP_FIX,
    "default_operation_scopes": 'list scope-tokens without spaces or quotes, e.g. ["mcp"], or leave it empty',
    "scope_implications": "map a scope to the scopes it satisfies, each named in `scopes` or needed by an "
    'operation, e.g. {"docs.write": ["docs.read"]}' + _MAP_FIX,
    "anonymous_operations": "list entries as tool:NAME, resource:URI, prompt:NAME or a method such as "
    '"ping", e.g. ["tool:status"]',
    "role_claim": "name the claim holding roles by its dotted path, e.g. permissions, realm_access.roles or groups",
    "role_scopes": "set role_claim, then map each role to scopes named in `scopes` or needed by an "
    'operation, e.g. {"editors": ["docs.write"]}' + _MAP_FIX,
    "tool_error_clients": 'list OAuth client_ids or MCP clientInfo name prefixes, e.g. ["openai-mcp"], or ["*"]',
}


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


def _check_anonymous(entries: list[str]) -> None:
    for entry in entries:
        kind, colon, name = entry.partition(":")
        if colon and kind in TARGET_KINDS:
            if not name.strip():
                raise ValueError(f"{entry!r} names no {kind}")
            continue
        if entry in TARGETED_METHODS:
            raise ValueError(
                f"{entry!r} would open every tool, resource or prompt; name each one as "
                "tool:NAME, resource:URI or prompt:NAME"
            )
        if not _METHOD.fullmatch(entry):
            raise ValueError(f"{entry!r} is neither tool:NAME, resource:URI, prompt:NAME nor a method name")


class PolicySettings(BaseModel):
    # -- per-operation policy and audit (authgate.policy, authgate.audit; docs/policy.md) --
    tool_scopes: dict[str, list[str]] = Field(
        default_factory=dict,
        description='scopes a tool needs (all of them), by tool name ("*" matches any characters), '
        'e.g. {"docs.create": ["docs.write"]}; the embedded server offers them besides `scopes`',
    )
    resource_scopes: dict[str, list[str]] = Field(
        default_factory=dict,
        description='scopes reading a resource needs, by URI ("*" wildcards), '
        'e.g. {"file:///private/*": ["files.read"]}',
    )
    prompt_scopes: dict[str, list[str]] = Field(
        default_factory=dict, description='scopes getting a prompt needs, by prompt name ("*" wildcards)'
    )
    default_operation_scopes: list[str] = Field(
        default_factory=list,
        description="scopes every tool, resource and prompt not named above needs (empty: any token authgate accepts)",
    )
    scope_implications: dict[str, list[str]] = Field(
        default_factory=dict,
        description='scopes that satisfy others, e.g. {"docs.write": ["docs.read"]} (transitive)',
    )
    anonymous_operations: list[str] = Field(
        default_factory=list,
        description="operations allowed without a token: tool:NAME, resource:URI, prompt:NAME or a "
        "method; connecting and listing then need no token either",
    )
    list_mode: Literal["filter", "mark"] = Field(
        "filter",
        description="tools/resources/prompts lists: filter = only what the caller may use; "
        "mark = everything, each marked with the scopes it needs",
    )
    role_claim: str | None = Field(
        None,
        description="dotted path of a token claim holding roles or permissions, e.g. permissions, "
        "realm_access.roles, groups",
    )
    role_scopes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="scopes each role in role_claim grants; empty: each value of role_claim is itself "
        "a scope (Auth0 RBAC permissions)",
    )
    tool_error_clients: list[str] = Field(
        default_factory=lambda: ["openai-mcp", "https://chatgpt.com/oauth/client.json"],
        description="clients (OAuth client_id, or MCP clientInfo name prefix; * = all) whose refused "
        'tools/call is answered as a tool error carrying _meta["mcp/www_authenticate"] instead of a 403',
    )
    audit_arguments: bool = Field(False, description="also record tool and prompt arguments in the audit trail")

    @field_validator(
        "tool_scopes", "resource_scopes", "prompt_scopes", "scope_implications", "role_scopes", mode="before"
    )
    @classmethod
    def _policy_maps_from_text(cls, v: Any) -> Any:
        return map_from_text(v)

    @field_validator("tool_scopes", "resource_scopes", "prompt_scopes")
    @classmethod
    def _policy_scope_maps(cls, v: dict[str, list[str]], info: Any) -> dict[str, list[str]]:
        _check_map(v, str(info.field_name).removesuffix("_scopes"))
        return v

    @field_validator("default_operation_scopes")
    @classmethod
    def _policy_default_scopes(cls, v: list[str]) -> list[str]:
        _check_scopes(v, "default")
        return v

    @field_validator("scope_implications")
    @classmethod
    def _policy_implications(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        _check_map(v, "scope")
        return v

    @field_validator("anonymous_operations")
    @classmethod
    def _policy_anonymous(cls, v: list[str]) -> list[str]:
        _check_anonymous(v)
        return v

    @field_validator("role_claim")
    @classmethod
    def _policy_role_claim(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or any(not part for part in v.split("."))):
            raise ValueError(f"{v!r} is not a dotted claim path like realm_access.roles")
        return v

    @field_validator("role_scopes")
    @classmethod
    def _policy_role_scopes(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        _check_map(v, "role")
        return v


def known_scopes(s: PolicySettings, scopes: Iterable[str]) -> set[str]:
    """The scopes the embedded server offers: `scopes` and every scope an operation needs."""
    known = set(scopes)
    for scope_map in (s.tool_scopes, s.resource_scopes, s.prompt_scopes):
        for needed in scope_map.values():
            known.update(needed)
    known.update(s.default_operation_scopes)
    return known


def _unknown(scopes: list[str], known: set[str], where: str) -> str | None:
    for scope in scopes:
        if scope not in known:
            return (
                f"{where}: scope {scope!r} is needed by no tool, resource or prompt and is "
                "not in `scopes`; check its spelling"
            )
    return None


def policy_refusals(s: PolicySettings, scopes: list[str]) -> list[Refusal]:
    """Rules across settings: implied and role scopes must be known; role_scopes needs role_claim."""
    known, found = known_scopes(s, scopes), []
    for scope, implied in s.scope_implications.items():
        if problem := _unknown([scope, *implied], known, f"implication of {scope!r}"):
            found.append(Refusal("scope_implications", problem, depends=_KNOWN))
            break
    if s.role_scopes and s.role_claim is None:
        found.append(
            Refusal(
                "role_scopes",
                "role_scopes needs role_claim: the token claim that holds the roles",
                depends=("role_claim",),
            )
        )
    elif s.role_scopes:
        for role, granted in s.role_scopes.items():
            if problem := _unknown(granted, known, f"role {role!r}"):
                found.append(Refusal("role_scopes", problem, depends=(*_KNOWN, "role_claim")))
                break
    return found
