"""The import direction of docs/architecture.md ("Allowed imports"), checked on the source.

An ast walk over src/authgate (no import is executed): every `import authgate…` and
`from authgate… import …` counts, at module level and inside functions alike, since a
function-level import runs as surely as a top-level one, only later. Imports under
`if TYPE_CHECKING:` do not count: they never run, they only name a type for mypy. (The root
package's public names are a facade resolved with importlib on first use, also not counted.)

Each module belongs to the unit of the longest prefix in LAYERS; a unit may import its own
layer and the layers below it, never one above, and the units may not import each other in
a cycle. ALLOWED lists the upward edges still waiting for their fix, each with the reason; it
may only shrink (an entry that no longer occurs fails too).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# lowest first: (layer, units). A unit is a module or package prefix; the longest one wins.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "neutral",
        (
            "authgate",
            "authgate._version",
            "authgate.errors",
            "authgate.observe",
            # what the metrics count, reported from every layer (server/metrics.py installs the meter)
            "authgate.metering",
            # OpenTelemetry spans (imported only when tracing is on): the gate, both gateways
            "authgate.tracing",
            "authgate.json_depth",
            # a function's answers kept per key, bounded: config, oauth and server parse the same few values
            "authgate.memo",
            # URLs as they may be printed (passwords, query values masked): config, gateway, IdP, doctor
            "authgate.masking",
            # outbound httpx failures and OAuth error answers, for the core and adapters alike
            "authgate.httpx_errors",
            "authgate.error_responses",
            # the RFC 9110 §11 challenge grammar: the doctor and the outbound client read challenges
            "authgate.www_authenticate",
            # the Identity value the guard hands on: policy, audit and the adapters read it
            "authgate.guard.identity",
        ),
    ),
    ("config and store contracts", ("authgate.config", "authgate.store")),
    # outbound: authgate as an OAuth client of a protected remote (framework-free, beside oauth)
    # connections: each user's third-party tokens (broker, connect links) on top of outbound
    ("core", ("authgate.oauth", "authgate.policy", "authgate.guard", "authgate.outbound", "authgate.connections")),
    (
        "adapters",
        (
            "authgate.store.sql",
            "authgate.server",
            # what both gateways use; neither imports the other, and the shared part neither
            "authgate.gateway",
            "authgate.gateway.http",
            "authgate.gateway.stdio",
            "authgate.kb",
            "authgate.idp",
            "authgate.idp.proxy",
            "authgate.doctor",
            "authgate.audit",
            "authgate.mcpapp",
            "authgate.library",
            # policy's ASGI middleware: reads bodies with the gateway's helpers, audits
            "authgate.policy.enforcer",
            "authgate.policy.answers",
            "authgate.policy.layer",
            "authgate.policy.responses",
        ),
    ),
    ("cli", ("authgate.cli", "authgate.__main__")),
)
POLICY_ASGI = (
    "authgate.policy.enforcer",
    "authgate.policy.answers",
    "authgate.policy.layer",
    "authgate.policy.responses",
)

# (importing unit, imported unit): why it is still there
ALLOWED: dict[tuple[str, str], str] = {}


def _layer_of() -> dict[str, int]:
    return {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    units = _layer_of()
    if module == "authgate":
        return "authgate"
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        prefix = ".".join(parts[:n])
        if prefix in units:
            return "policy ASGI" if prefix in POLICY_ASGI else prefix
    raise AssertionError(f"{module} is in no unit of LAYERS: add it")


def layer_of(unit: str) -> int:
    return _layer_of()[POLICY_ASGI[0] if unit == "policy ASGI" else unit]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
            "_typing.TYPE_CHECKING",
        ):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
    # `from authgate.x import y` imports the module authgate.x.y when there is one
    return [f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base for alias in node.names]


def _is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def authgate_imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(imported module, line) for every authgate import in `tree` that runs."""
    skip = _type_checking_nodes(tree)
    return [
        (target, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skip
        for target in _targets(node, module, is_package)
        if target == "authgate" or target.startswith("authgate.")
    ]


def imports() -> list[tuple[str, str, str]]:
    """(importing module, imported module, file:line) for every authgate import that runs."""
    found = []
    for path in sorted((SRC / "authgate").rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        for target, line in authgate_imports(tree, module, path.name == "__init__.py"):
            found.append((module, target, f"{path.relative_to(SRC)}:{line}"))
    return found


def unit_edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, target, where in imports():
        a, b = unit_of(source), unit_of(target)
        if a != b:
            edges[(a, b)].append(where)
    return edges


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one unit (Tarjan)."""
    graph: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        graph[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = {
        edge: where
        for edge, where in unit_edges().items()
        if layer_of(edge[1]) > layer_of(edge[0]) and edge not in ALLOWED
    }
    assert not upward, "imports against the layers of docs/architecture.md:\n" + "\n".join(
        f"  {a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]}): {', '.join(w)}"
        for (a, b), w in sorted(upward.items())
    )


def test_no_import_cycle_between_units() -> None:
    edges = {edge for edge in unit_edges() if edge not in ALLOWED}
    assert not cycles(edges), f"units importing each other in a cycle: {cycles(edges)}"


def test_the_allow_list_only_names_edges_that_still_exist() -> None:
    stale = set(ALLOWED) - set(unit_edges())
    assert not stale, f"fixed, remove from ALLOWED: {sorted(stale)}"


def test_the_walk_counts_imports_in_functions_and_skips_type_checking_ones() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import authgate.server\n"
        "def f():\n    from authgate.cli import main\n    from . import pkce\n"
    )
    assert [t for t, _ in authgate_imports(tree, "authgate.oauth.grants", False)] == [
        "authgate.cli.main",
        "authgate.oauth.pkce",
    ]
    assert layer_of(unit_of("authgate.cli.main")) > layer_of(unit_of("authgate.oauth.grants"))


def test_a_known_upward_import_is_reported() -> None:
    # what guard/middleware.py did before note() moved to authgate/observe.py
    edge = (unit_of("authgate.guard.middleware"), unit_of("authgate.server.logs"))
    assert layer_of(edge[1]) > layer_of(edge[0])
    assert cycles({edge, ("authgate.server", "authgate.guard")}) == [["authgate.guard", "authgate.server"]]


def test_the_oauth_core_never_imports_the_settings_model() -> None:
    # the core is given CoreConfig (oauth/config.py), the values it reads; Settings is named for
    # the type checker only, where the config is built from it
    found = [
        where
        for source, target, where in imports()
        if unit_of(source) == "authgate.oauth" and target == "authgate.config.settings"
    ]
    assert not found, f"the OAuth core imports the settings model at run time: {found}"
