"""Requirement tags: one registry of constants (tests/support/requirements.py), checked at
collection (tests/conftest.py), and docs/requirements.md generated from the tags
(scripts/requirements_matrix.py), kept current here so the document cannot drift."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from support import requirements as req

REPO = Path(__file__).resolve().parents[2]

# Every way a test file places a tag; the ids are pytest's own (checked by collecting the file).
PLACES = """
import pytest
from support import requirements as req

pytestmark = pytest.mark.requirement(req.MCP_2025_11_25_ORIGIN)

CASES = {
    "plain": pytest.param("plain", marks=pytest.mark.requirement(req.MCP_2025_11_25_AUTH_S256_ONLY)),
    "s256": pytest.param("S256"),
}


@pytest.mark.requirement(req.RFC9700_4_14_2_REUSE_REVOKES_FAMILY)
def test_decorated():
    pass


@pytest.mark.parametrize("method", list(CASES.values()), ids=list(CASES))
def test_cases(method):
    pass


@pytest.mark.parametrize("n", [pytest.param(1, id="one", marks=pytest.mark.requirement(req.RFC9207_ISS)), 2])
def test_inline_case(n):
    pass


@pytest.mark.requirement(req.RFC8707_2_AUDIENCE)
class TestGroup:
    def test_a(self):
        pass

    @pytest.mark.requirement(req.RFC9068_4_ISS)
    async def test_b(self):
        pass
"""

PLACED = {
    "MCP_2025_11_25_ORIGIN": [
        "test_cases",
        "test_decorated",
        "test_inline_case",
        "TestGroup::test_a",
        "TestGroup::test_b",
    ],
    "MCP_2025_11_25_AUTH_S256_ONLY": ["test_cases[plain]"],
    "RFC9700_4_14_2_REUSE_REVOKES_FAMILY": ["test_decorated"],
    "RFC9207_ISS": ["test_inline_case[one]"],
    "RFC8707_2_AUDIENCE": ["TestGroup::test_a", "TestGroup::test_b"],
    "RFC9068_4_ISS": ["TestGroup::test_b"],
}

UNREGISTERED = """
import pytest
from support import requirements as req


@pytest.mark.requirement(req.RFC9700_4_14_2_REUSE_REVOKES_FAMILY)
def test_registered():
    pass


@pytest.mark.requirement("RFC 9700 §4.14.2: refresh token reuse revokes the family")
def test_free_text():
    pass


@pytest.mark.requirement(req.Requirement("RFC 9700", "§4.14.2", "on refresh token reuse, revoke the whole family"))
def test_lookalike():
    pass
"""


def _matrix() -> ModuleType:
    spec = importlib.util.spec_from_file_location("requirements_matrix", REPO / "scripts" / "requirements_matrix.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _collect(folder: Path, source: str) -> subprocess.CompletedProcess[str]:
    """pytest --collect-only over one test file, with tests/conftest.py's hooks as a plugin."""
    (folder / "pytest.ini").write_text("[pytest]\nmarkers = requirement\n", encoding="utf-8")
    (folder / "test_tags.py").write_text(source, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "conftest",
            "test_tags.py",
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_docs_requirements_md_is_what_the_generator_writes() -> None:
    matrix = _matrix()
    committed = (REPO / "docs" / "requirements.md").read_text(encoding="utf-8")
    assert committed == matrix.render(matrix.tagged_tests()), (
        "docs/requirements.md is stale: run python scripts/requirements_matrix.py"
    )


def test_every_requirement_is_registered_once_and_proved_by_a_test() -> None:
    tags = _matrix().tagged_tests()
    assert sorted(set(req.REGISTRY) - set(tags)) == [], "a requirement no test proves"
    values = list(req.REGISTRY.values())
    assert len(set(values)) == len(values), "one requirement under two names"
    assert {r.spec for r in values} <= set(req.SPECS)


def test_the_generator_places_every_kind_of_tag_where_pytest_does(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_tags.py").write_text(PLACES, encoding="utf-8")
    prefix = "tests/test_tags.py::"
    assert _matrix().tagged_tests(tmp_path / "tests") == {
        name: [prefix + test for test in sorted(tests)] for name, tests in PLACED.items()
    }

    collected = _collect(tmp_path / "tests", PLACES)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    node_ids = collected.stdout.splitlines()
    for test in {t for tests in PLACED.values() for t in tests}:
        assert any(n == f"test_tags.py::{test}" or n.startswith(f"test_tags.py::{test}[") for n in node_ids), test


def test_a_tag_outside_the_registry_fails_collection(tmp_path: Path) -> None:
    collected = _collect(tmp_path, UNREGISTERED)
    output = collected.stdout + collected.stderr
    assert collected.returncode == pytest.ExitCode.USAGE_ERROR, output
    refused = output.split("ERROR: requirement tags outside the registry:")[1]
    assert (
        "test_tags.py::test_free_text: requirement('RFC 9700 §4.14.2: refresh token reuse revokes the family')"
        " is not one constant of tests/support/requirements.py"
    ) in refused
    assert "test_tags.py::test_lookalike: requirement(Requirement(" in refused  # equal is not enough
    assert "test_registered" not in refused


def test_the_generator_refuses_a_tag_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_tags.py").write_text(UNREGISTERED, encoding="utf-8")
    matrix = _matrix()
    with pytest.raises(matrix.TagError, match=r"tests/test_tags.py:\d+: a requirement tag names one constant"):
        matrix.tagged_tests(tmp_path / "tests")
