"""The per-operation policy: which scopes each tool, resource and prompt needs, and who holds them.

Plain values in, plain values out (no Starlette here): the enforcer, the consent page, the
PRM scope map and the list rewriting all ask this one object.

    requirement(op)   the scopes an operation needs (all of them): its rule, else the default;
                      without a target, every scope of its kind (`strictest`)
    effective(ident)  what a caller holds: token scopes ∪ scopes from roles, closed under the
                      implications (`docs.write` ⇒ `docs.read`)
    decide(op, ident) allowed, or refused with the scopes that were missing
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from authgate.config.settings import Settings
from authgate.guard.identity import Identity

Kind = Literal["tool", "resource", "prompt", "method"]
TARGETS: tuple[Kind, ...] = ("tool", "resource", "prompt")

# With any anonymous operation configured, a client must be able to connect and list without a
# token too, or it could never reach the operations it may use (ChatGPT's `noauth` tools).
ANONYMOUS_PLUMBING = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "prompts/list",
    }
)


@dataclass(frozen=True, slots=True)
class Operation:
    """What one JSON-RPC message asks for: a tool, resource or prompt, or another method."""

    method: str
    kind: Kind
    target: str | None = None  # tool or prompt name, resource URI; None for other methods


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    needed: tuple[str, ...] = ()  # the operation's requirement (for challenges and audit)
    reason: str | None = None  # why refused


class RuleSet:
    """Name → scopes, exact names first, then `*` patterns (the longest pattern wins)."""

    def __init__(self, rules: Mapping[str, list[str]]) -> None:
        self.exact = {k: tuple(v) for k, v in rules.items() if "*" not in k}
        patterns = sorted((k for k in rules if "*" in k), key=len, reverse=True)
        self.patterns = [
            (re.compile(".*".join(map(re.escape, k.split("*"))), re.DOTALL), k, tuple(rules[k])) for k in patterns
        ]

    def lookup(self, name: str) -> tuple[str, ...] | None:
        if name in self.exact:
            return self.exact[name]
        for regex, _key, scopes in self.patterns:
            if regex.fullmatch(name):
                return scopes
        return None

    def matches(self, name: str) -> bool:
        return self.lookup(name) is not None

    def items(self) -> Iterable[tuple[str, tuple[str, ...]]]:
        yield from self.exact.items()
        for _regex, key, scopes in self.patterns:
            yield key, scopes


def _closure(implications: Mapping[str, list[str]]) -> dict[str, frozenset[str]]:
    """Each scope → every scope it satisfies, itself included (transitive, cycles allowed)."""
    out: dict[str, frozenset[str]] = {}
    for start in implications:
        seen, todo = {start}, [start]
        while todo:
            for implied in implications.get(todo.pop(), ()):
                if implied not in seen:
                    seen.add(implied)
                    todo.append(implied)
        out[start] = frozenset(seen)
    return out


def claim_at(claims: Mapping[str, Any], path: tuple[str, ...]) -> tuple[str, ...]:
    """The strings at a dotted claim path: a list of strings, or one space-separated string.
    A top-level claim named by the whole path wins, so namespaced claims such as Auth0's
    `https://example.com/roles` work although they contain dots."""
    whole = ".".join(path)
    value: Any = claims[whole] if whole in claims else claims
    for part in () if whole in claims else path:
        if not isinstance(value, Mapping):
            return ()
        value = value.get(part)
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


MAX_REMEMBERED_SCOPE_SETS = 1024


@dataclass(frozen=True)
class Policy:
    rules: Mapping[Kind, RuleSet]
    default: tuple[str, ...]
    implies: Mapping[str, frozenset[str]]
    anonymous: Mapping[Kind, RuleSet]
    anonymous_methods: frozenset[str]
    list_mode: Literal["filter", "mark"]
    baseline: tuple[str, ...]
    role_claim: tuple[str, ...] | None = None
    role_scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # scopes a token holds → what they imply: worked out once per set of scopes (bounded)
    _effective: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict, compare=False, repr=False)
    # an allowed decision per requirement (immutable, so shared): not one built per call
    _allowed: dict[tuple[str, ...], Decision] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        anonymous: dict[Kind, dict[str, list[str]]] = {kind: {} for kind in TARGETS}
        methods = set()
        for entry in settings.anonymous_operations:
            kind, colon, name = entry.partition(":")
            target = next((k for k in TARGETS if k == kind), None) if colon else None
            if target is None:
                methods.add(entry)
            else:
                anonymous[target][name] = []
        return cls(
            rules={
                "tool": RuleSet(settings.tool_scopes),
                "resource": RuleSet(settings.resource_scopes),
                "prompt": RuleSet(settings.prompt_scopes),
            },
            default=tuple(settings.default_operation_scopes),
            implies=_closure(settings.scope_implications),
            anonymous={k: RuleSet(v) for k, v in anonymous.items()},
            anonymous_methods=frozenset(methods),
            list_mode=settings.list_mode,
            baseline=tuple(settings.scopes),
            role_claim=tuple(settings.role_claim.split(".")) if settings.role_claim else None,
            role_scopes={k: tuple(v) for k, v in settings.role_scopes.items()},
        )

    # -- what operations need --------------------------------------------------------------
    @property
    def has_anonymous(self) -> bool:
        return bool(self.anonymous_methods) or any(r.exact or r.patterns for r in self.anonymous.values())

    def requirement(self, op: Operation) -> tuple[str, ...]:
        if op.kind == "method":
            return ()
        if op.target is None:
            return self.strictest(op.kind)
        found = self.rules[op.kind].lookup(op.target)
        return self.default if found is None else found

    def strictest(self, kind: Kind) -> tuple[str, ...]:
        """Every scope the default or any rule of `kind` needs: what a request of a targeted
        method that names no target needs (`tools/call` without a name, `resources/subscribe`
        without a URI). Its answer is the upstream's to give — -32602, or -32601 for a method
        the upstream does not serve — so it is passed on, but only for a caller who could
        reach whatever the upstream might make of it."""
        scopes = dict.fromkeys(self.default)
        for _name, needed in self.rules[kind].items():
            scopes.update(dict.fromkeys(needed))
        return tuple(scopes)

    def is_anonymous(self, op: Operation) -> bool:
        if op.kind == "method":
            return self.has_anonymous and (
                op.method in self.anonymous_methods
                or op.method in ANONYMOUS_PLUMBING
                or op.method.startswith("notifications/")
            )
        return op.target is not None and self.anonymous[op.kind].matches(op.target)

    # -- what callers hold -----------------------------------------------------------------
    def from_roles(self, identity: Identity) -> tuple[str, ...]:
        if self.role_claim is None:
            return ()
        roles = claim_at(identity.claims, self.role_claim)
        if not self.role_scopes:
            return roles  # the claim holds the permissions themselves (Auth0 RBAC `permissions`)
        return tuple(s for role in roles for s in self.role_scopes.get(role, ()))

    def effective(self, identity: Identity | None) -> frozenset[str]:
        if identity is None:
            return frozenset()
        if self.role_claim is None:  # the token's scopes alone decide
            held = self._effective.get(identity.scopes)
            if held is None:
                held = self._implied(identity.scopes)
                if len(self._effective) >= MAX_REMEMBERED_SCOPE_SETS:
                    self._effective.clear()
                self._effective[identity.scopes] = held
            return held
        return self._implied((*identity.scopes, *self.from_roles(identity)))

    def _implied(self, scopes: tuple[str, ...]) -> frozenset[str]:
        held: set[str] = set()
        for scope in scopes:
            held |= self.implies.get(scope, {scope})
        return frozenset(held)

    # -- the decision ----------------------------------------------------------------------
    def decide(self, op: Operation, identity: Identity | None, held: frozenset[str] | None = None) -> Decision:
        """Allowed when the operation is anonymous, or the caller is known and holds every scope
        it needs. `held` may be passed in when deciding several operations for one caller."""
        needed = self.requirement(op)
        if self.is_anonymous(op):
            return self._allow(needed)
        if identity is None:
            return Decision(False, needed, "no token, and the operation is not anonymous")
        if needed:
            if held is None:
                held = self.effective(identity)
            missing = [s for s in needed if s not in held]
            if missing:
                return Decision(False, needed, "insufficient_scope: needs " + " ".join(missing))
        return self._allow(needed)

    def _allow(self, needed: tuple[str, ...]) -> Decision:
        allowed = self._allowed.get(needed)
        if allowed is None:
            allowed = Decision(True, needed)
            if len(self._allowed) >= MAX_REMEMBERED_SCOPE_SETS:
                self._allowed.clear()
            self._allowed[needed] = allowed
        return allowed

    # -- for people and documents ----------------------------------------------------------
    def unlocked_by(self, scope: str, kind: Kind = "tool") -> list[str]:
        """The names whose rule needs `scope`, or a scope that `scope` satisfies."""
        satisfied = self.implies.get(scope, frozenset({scope}))
        return [name for name, needed in self.rules[kind].items() if set(needed) & satisfied]

    def scope_map(self) -> dict[str, Any]:
        """The published map: what each named tool, resource and prompt needs."""
        doc: dict[str, Any] = {
            f"{kind}s": {name: list(scopes) for name, scopes in self.rules[kind].items()} for kind in TARGETS
        }
        doc["default"] = list(self.default)
        doc["implies"] = {k: sorted(v - {k}) for k, v in self.implies.items()}
        return doc


def offered_scopes(settings: Settings) -> list[str]:
    """The scopes the embedded authorization server grants: `scopes` and every scope the
    policy names (docs/policy.md: the policy extends what is offered; `scopes` stays the
    baseline that PRM and the 401 challenge advertise)."""
    rules = (settings.tool_scopes, settings.resource_scopes, settings.prompt_scopes)
    named = [s for rule in rules for scopes in rule.values() for s in scopes]
    return list(dict.fromkeys((*settings.scopes, *named, *settings.default_operation_scopes)))


SCOPE_MAP_MEMBER = "authgate_scopes"


def published_scope_map(settings: Settings) -> dict[str, Any]:
    """The PRM extension member (RFC 9728 §2 lets metadata carry more members) publishing the
    policy's scope map, when the policy names anything; `scopes_supported` stays the baseline."""
    policy = Policy.from_settings(settings)
    doc = policy.scope_map()
    if not any(doc[k] for k in ("tools", "resources", "prompts", "default")):
        return {}
    return {SCOPE_MAP_MEMBER: doc}
