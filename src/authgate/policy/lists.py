"""Rewriting `tools/list`, `resources/list`, `resources/templates/list` and `prompts/list`
results for one caller.

filter   only what the caller may use stays (a convenience, never the security boundary:
         calls are decided on their own)
mark     everything stays; each item's `_meta` says the scopes it needs and whether this
         caller holds them

Either way each tool carries `securitySchemes` (ChatGPT tool-level sign-in: `noauth` for
anonymous tools, `oauth2` with the scopes it needs), and the result, now depending on who
asked, is marked `cacheScope: "private"` for 2026-07-28 clients (MCP 2026-07-28
server/utilities/caching).
"""

from __future__ import annotations

from typing import Any

from authgate.guard.identity import Identity
from authgate.policy.model import Kind, Operation, Policy

# list method → (member holding the items, kind of item, member naming an item)
LIST_METHODS: dict[str, tuple[str, Kind, str]] = {
    "tools/list": ("tools", "tool", "name"),
    "resources/list": ("resources", "resource", "uri"),
    "resources/templates/list": ("resourceTemplates", "resource", "uriTemplate"),
    "prompts/list": ("prompts", "prompt", "name"),
}
NEEDED_KEY = "authgate/requiredScopes"
ALLOWED_KEY = "authgate/allowed"


def security_schemes(policy: Policy, name: str) -> list[dict[str, Any]]:
    """OpenAI Apps SDK per-tool `securitySchemes`: how a tool may be called."""
    op = Operation("tools/call", "tool", name)
    oauth: dict[str, Any] = {"type": "oauth2", "scopes": list(policy.requirement(op) or policy.baseline)}
    return [{"type": "noauth"}, oauth] if policy.is_anonymous(op) else [oauth]


class ListRewriter:
    """Rewrites the list results of one request, for the caller who sent it."""

    def __init__(self, policy: Policy, identity: Identity | None, *, private_cache_hint: bool) -> None:
        self.policy = policy
        self.identity = identity
        self.held = policy.effective(identity)
        self.private_cache_hint = private_cache_hint
        self.listed_tools: list[str] | None = None  # names of a complete tools/list, once seen

    def rewrite(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        member, kind, key = LIST_METHODS[method]
        items = result.get(member)
        if not isinstance(items, list):
            return result
        kept = [out for item in items if (out := self._item(item, kind, key)) is not None]
        if kind == "tool" and "nextCursor" not in result and "cursor" not in result:
            self.listed_tools = [str(i.get("name")) for i in items if isinstance(i, dict)]
        rewritten = {**result, member: kept}
        if self.private_cache_hint:
            rewritten["cacheScope"] = "private"
        return rewritten

    def _item(self, item: Any, kind: Kind, key: str) -> Any:
        name = item.get(key) if isinstance(item, dict) else None
        if not isinstance(name, str):
            return item  # not an item we can name, so not one a call could name either
        decision = self.policy.decide(Operation("list", kind, name), self.identity, self.held)
        if self.policy.list_mode == "filter" and not decision.allowed:
            return None
        out = dict(item)
        meta = dict(out["_meta"]) if isinstance(out.get("_meta"), dict) else {}
        if kind == "tool":
            out["securitySchemes"] = meta["securitySchemes"] = security_schemes(self.policy, name)
        if self.policy.list_mode == "mark":
            meta[NEEDED_KEY] = list(decision.needed)
            meta[ALLOWED_KEY] = decision.allowed
        if meta:
            out["_meta"] = meta
        return out


def missing_tools(policy: Policy, listed: list[str]) -> list[str]:
    """Tools the policy names (exactly, not by pattern) that the server did not list."""
    named = [*policy.rules["tool"].exact, *policy.anonymous["tool"].exact]
    present = set(listed)
    return sorted({n for n in named if n not in present})
