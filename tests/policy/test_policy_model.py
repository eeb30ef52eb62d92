"""The policy model: requirements, patterns, implications, roles, anonymity, and its settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authgate.config.settings import load_settings
from authgate.errors import ConfigError
from authgate.guard.identity import Identity
from authgate.policy.model import Operation, Policy, offered_scopes, published_scope_map

SEED = {  # seed 002: one permission per tool
    "scopes": ["search.read"],
    "tool_scopes": {
        "codebase.search": ["search.read"],
        "docs.create": ["docs.write"],
        "local_memory_delete": ["memory.delete"],
        "admin.*": ["admin"],
    },
    "scope_implications": {"docs.write": ["search.read"]},
}


def settings(tmp_path: Path, **overrides: Any) -> Any:
    return load_settings(None, data_dir=tmp_path, **{**SEED, **overrides})


def ident(*scopes: str, **claims: Any) -> Identity:
    return Identity(
        subject="u1", client_id="c1", scopes=scopes, audience=("https://x/mcp",), expires_at=0, claims=claims
    )


def tool(name: str) -> Operation:
    return Operation("tools/call", "tool", name)


def test_a_tool_needs_its_own_scope_and_others_the_default(tmp_path: Path) -> None:
    policy = Policy.from_settings(settings(tmp_path, default_operation_scopes=["search.read"]))
    assert policy.requirement(tool("docs.create")) == ("docs.write",)
    assert policy.requirement(tool("unnamed")) == ("search.read",)
    assert policy.requirement(Operation("tools/list", "method")) == ()


def test_exact_names_win_over_patterns_and_longer_patterns_over_shorter(tmp_path: Path) -> None:
    policy = Policy.from_settings(
        settings(tmp_path, tool_scopes={"a.*": ["x"], "a.b*": ["y"], "a.bc": ["z"]}, scope_implications={})
    )
    assert policy.requirement(tool("a.q")) == ("x",)
    assert policy.requirement(tool("a.bq")) == ("y",)
    assert policy.requirement(tool("a.bc")) == ("z",)
    assert policy.requirement(tool("a")) == ()  # "*" needs the dot before it


def test_read_token_is_refused_the_write_tool_with_the_missing_scope(tmp_path: Path) -> None:
    policy = Policy.from_settings(settings(tmp_path))
    decision = policy.decide(tool("docs.create"), ident("search.read"))
    assert not decision.allowed and decision.needed == ("docs.write",)
    assert decision.reason == "insufficient_scope: needs docs.write"
    assert policy.decide(tool("codebase.search"), ident("search.read")).allowed


def test_implications_are_transitive(tmp_path: Path) -> None:
    policy = Policy.from_settings(
        settings(tmp_path, scope_implications={"memory.delete": ["docs.write"], "docs.write": ["search.read"]})
    )
    assert policy.decide(tool("codebase.search"), ident("memory.delete")).allowed
    assert not policy.decide(tool("local_memory_delete"), ident("docs.write")).allowed


@pytest.mark.parametrize(
    ("claim", "claims"),
    [
        ("permissions", {"permissions": ["docs.write"]}),  # Auth0 RBAC: the values are scopes
        ("realm_access.roles", {"realm_access": {"roles": ["docs.write", "other"]}}),  # Keycloak
        ("scp", {"scp": "docs.write other"}),  # one space-separated string
        ("https://example.com/roles", {"https://example.com/roles": ["docs.write"]}),  # Auth0 namespaced claim
    ],
)
def test_roles_from_a_claim_path_grant_scopes(tmp_path: Path, claim: str, claims: dict[str, Any]) -> None:
    policy = Policy.from_settings(settings(tmp_path, role_claim=claim))
    assert policy.decide(tool("docs.create"), ident(**claims)).allowed
    assert not policy.decide(tool("local_memory_delete"), ident(**claims)).allowed


def test_role_scopes_map_roles_to_scopes(tmp_path: Path) -> None:
    policy = Policy.from_settings(
        settings(tmp_path, role_claim="groups", role_scopes={"editors": ["docs.write"], "admins": ["admin"]})
    )
    assert policy.effective(ident(groups=["editors"])) == {"docs.write", "search.read"}
    assert policy.decide(tool("admin.purge"), ident(groups=["admins"])).allowed
    assert not policy.decide(tool("docs.create"), ident(groups=["docs.write"])).allowed  # not a role
    assert policy.effective(ident(groups="not-a-list-of-roles")) == set()


def test_anonymous_operations_and_the_plumbing_they_need(tmp_path: Path) -> None:
    policy = Policy.from_settings(settings(tmp_path, anonymous_operations=["tool:codebase.search", "logging/setLevel"]))
    assert policy.decide(tool("codebase.search"), None).allowed
    assert not policy.decide(tool("docs.create"), None).allowed
    for method in ("initialize", "tools/list", "notifications/initialized", "logging/setLevel"):
        assert policy.decide(Operation(method, "method"), None).allowed
    closed = Policy.from_settings(settings(tmp_path))
    assert not closed.decide(Operation("initialize", "method"), None).allowed


def test_a_targeted_method_without_a_target_is_never_allowed(tmp_path: Path) -> None:
    policy = Policy.from_settings(settings(tmp_path))
    assert not policy.decide(Operation("tools/call", "tool", None), ident("search.read")).allowed


def test_offered_scopes_are_the_baseline_then_the_policy_s(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert offered_scopes(s) == ["search.read", "docs.write", "memory.delete", "admin"]
    assert published_scope_map(s)["authgate_scopes"]["tools"]["docs.create"] == ["docs.write"]
    assert published_scope_map(load_settings(None, data_dir=tmp_path)) == {}


def test_unlocked_by_names_tools_a_scope_opens_through_implications(tmp_path: Path) -> None:
    policy = Policy.from_settings(settings(tmp_path))
    assert policy.unlocked_by("docs.write") == ["codebase.search", "docs.create"]
    assert policy.unlocked_by("memory.delete") == ["local_memory_delete"]


@pytest.mark.parametrize(
    ("overrides", "setting", "problem"),
    [
        ({"tool_scopes": {"t": ["has space"]}}, "tool_scopes", "not a valid scope-token"),
        ({"tool_scopes": {"t": ["offline_access"]}}, "tool_scopes", "offline_access"),
        ({"tool_scopes": '{"t": "not json'}, "tool_scopes", ""),
        ({"scope_implications": {"docs.write": ["docs.raed"]}}, "scope_implications", "check its spelling"),
        ({"anonymous_operations": ["tools/call"]}, "anonymous_operations", "would open every tool"),
        ({"anonymous_operations": ["tool:"]}, "anonymous_operations", "names no tool"),
        ({"anonymous_operations": ["what is this"]}, "anonymous_operations", "neither"),
        ({"role_scopes": {"editors": ["docs.write"]}}, "role_scopes", "needs role_claim"),
        ({"role_claim": "a..b"}, "role_claim", "dotted claim path"),
        ({"role_claim": "groups", "role_scopes": {"x": ["nope"]}}, "role_scopes", "check its spelling"),
        ({"list_mode": "hide"}, "list_mode", ""),
    ],
)
def test_a_wrong_policy_setting_is_named_at_start(
    tmp_path: Path, overrides: dict[str, Any], setting: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, **overrides)
    assert caught.value.setting == setting
    assert problem in caught.value.problem


def test_maps_come_from_json_text_on_the_command_line(tmp_path: Path) -> None:
    s = settings(tmp_path, tool_scopes='{"docs.create": ["docs.write"]}')
    assert s.tool_scopes == {"docs.create": ["docs.write"]}


def test_maps_come_from_toml(tmp_path: Path) -> None:
    config = tmp_path / "authgate.toml"
    config.write_text(
        'scopes = ["search.read"]\nlist_mode = "mark"\nrole_claim = "permissions"\n'
        '[tool_scopes]\n"docs.create" = ["docs.write"]\n'
    )
    s = load_settings(config, data_dir=tmp_path)
    assert s.tool_scopes == {"docs.create": ["docs.write"]} and s.list_mode == "mark"
