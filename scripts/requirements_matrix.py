#!/usr/bin/env python3
"""Write docs/requirements.md: every requirement of tests/support/requirements.py with the tests
that prove it, grouped by spec.

    python scripts/requirements_matrix.py          # (re)write docs/requirements.md
    python scripts/requirements_matrix.py --check  # exit 1 when docs/requirements.md is stale

The tests are found by an ast walk over tests/ (no test module is imported): a
`pytest.mark.requirement(req.NAME)` on a test, on a Test class (its tests), in a module's
`pytestmark` (every test in the module) or in a `pytest.param(..., marks=...)` (that case of the
test whose parametrize names it). A tag written any other way is an error here, as a tag that is
not a registry constant is at collection (tests/conftest.py).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
DOC = REPO / "docs" / "requirements.md"

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
from support import requirements  # noqa: E402  (tests/ is not a package: found through sys.path)


class TagError(Exception):
    """A requirement tag the walk cannot read or place."""


def tagged_tests(tests: Path = TESTS) -> dict[str, list[str]]:
    """Registry constant name -> the sorted ids of the tests tagged with it (paths from the repo
    root, or from tests' parent when tests is elsewhere)."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted(tests.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        rel = path.relative_to(tests.parent).as_posix()
        for name, test_id in _file_tags(ast.parse(path.read_text(encoding="utf-8")), rel):
            found[name].add(test_id)
    return {name: sorted(ids) for name, ids in found.items()}


def _is_tag(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "requirement"
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "mark"
    )


def _file_tags(tree: ast.Module, rel: str) -> Iterator[tuple[str, str]]:
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for call in (node for node in ast.walk(tree) if _is_tag(node)):
        assert isinstance(call, ast.Call)
        name = _constant(call, f"{rel}:{call.lineno}")
        for test_id in _owners(call, parents, tree, rel):
            yield name, test_id


def _constant(call: ast.Call, where: str) -> str:
    arg = call.args[0] if len(call.args) == 1 and not call.keywords else None
    name = arg.attr if isinstance(arg, ast.Attribute) else arg.id if isinstance(arg, ast.Name) else None
    if name not in requirements.REGISTRY:
        raise TagError(
            f"{where}: a requirement tag names one constant of tests/support/requirements.py "
            "(`@pytest.mark.requirement(req.NAME)`)"
        )
    return name


def _owners(call: ast.Call, parents: Mapping[ast.AST, ast.AST], tree: ast.Module, rel: str) -> list[str]:
    """The ids of the tests a tag applies to."""
    case = ""
    node: ast.AST = call
    while node in parents:
        parent = parents[node]
        if _is_param(parent):
            case = _case_id(parent, parents, rel)
        if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node in parent.decorator_list:
            return [f"{test}{case}" for test in _tests_in(parent, f"{rel}::", parents)]
        if isinstance(parent, ast.Module):
            return _module_level(node, case, tree, rel)
        node = parent
    raise TagError(f"{rel}:{call.lineno}: a requirement tag outside any test")


def _is_param(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "param"


def _case_id(param: ast.AST, parents: Mapping[ast.AST, ast.AST], rel: str) -> str:
    """`[id]` of a pytest.param: its id=, or its key in a dict of cases."""
    assert isinstance(param, ast.Call)
    for keyword in param.keywords:
        if keyword.arg == "id" and isinstance(keyword.value, ast.Constant):
            return f"[{keyword.value.value}]"
    holder = parents.get(param)
    if isinstance(holder, ast.Dict):
        key = holder.keys[holder.values.index(param)]
        if isinstance(key, ast.Constant):
            return f"[{key.value}]"
    raise TagError(f"{rel}:{param.lineno}: a pytest.param with a requirement tag needs an id (id= or a dict key)")


def _module_level(statement: ast.AST, case: str, tree: ast.Module, rel: str) -> list[str]:
    """`pytestmark = ...`: every test of the module; `CASES = {...}` of pytest.params: the tests
    whose decorators name CASES."""
    targets = [t.id for t in getattr(statement, "targets", []) if isinstance(t, ast.Name)]
    everything = [test for top in tree.body for test in _tests_in(top, f"{rel}::", {})]
    if targets == ["pytestmark"]:
        return everything
    if case and targets:
        users = [
            top
            for top in tree.body
            if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef))
            and any(isinstance(n, ast.Name) and n.id == targets[0] for d in top.decorator_list for n in ast.walk(d))
        ]
        if users:
            return [f"{test}{case}" for top in users for test in _tests_in(top, f"{rel}::", {})]
    raise TagError(f"{rel}:{getattr(statement, 'lineno', 0)}: cannot tell which tests this requirement tag is for")


def _tests_in(node: ast.AST, prefix: str, parents: Mapping[ast.AST, ast.AST]) -> list[str]:
    """Test ids under a def or class, by pytest's default naming (test_*, Test*)."""
    for outer in _enclosing_classes(node, parents):
        prefix += f"{outer}::"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [f"{prefix}{node.name}"] if node.name.startswith("test") else []
    if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
        return [test for child in node.body for test in _tests_in(child, f"{prefix}{node.name}::", {})]
    return []


def _enclosing_classes(node: ast.AST, parents: Mapping[ast.AST, ast.AST]) -> list[str]:
    names = []
    current = parents.get(node)
    while current is not None:
        if isinstance(current, ast.ClassDef):
            names.append(current.name)
        current = parents.get(current)
    return names[::-1]


def render(tags: Mapping[str, list[str]]) -> str:
    """docs/requirements.md: the specs in SPECS order, each requirement in registry order."""
    registry = requirements.REGISTRY
    tests = {test for ids in tags.values() for test in ids}
    lines = [
        "# Requirements and the tests that prove them",
        "",
        "<!-- generated by scripts/requirements_matrix.py; do not edit by hand -->",
        "",
        f"{len(registry)} requirements from {len({r.spec for r in registry.values()})} specifications,"
        f" proved by {len(tests)} tagged tests.",
        "A test names what it proves with `@pytest.mark.requirement(req.NAME)`"
        " (`from support import requirements as req`), a constant of `tests/support/requirements.py`;",
        "collection fails on any other tag (`tests/conftest.py`), and"
        " `tests/unit/test_requirements_matrix.py` fails until this file is regenerated"
        " with `python scripts/requirements_matrix.py`.",
        "A parametrized test tagged as a whole is listed once, without its cases.",
    ]
    for spec, title in requirements.SPECS.items():
        mine = [(name, r) for name, r in registry.items() if r.spec == spec]
        if not mine:
            continue
        lines += ["", f"## {spec}: {title}", ""]
        for name, req in mine:
            section = f"**{req.section}** " if req.section else ""
            lines.append(f"- {section}{req.text} (`{name}`)")
            lines += [f"  - `{test}`" for test in tags.get(name, [])] or ["  - (no test)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/requirements.md is stale")
    args = parser.parse_args(argv)
    text = render(tagged_tests())
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC.relative_to(REPO)} is stale: run python scripts/requirements_matrix.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
