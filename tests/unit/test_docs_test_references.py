"""Every test the docs point at exists: `docs/replicas.md`'s failure table, `docs/security.md`'s
threat model and the others name `tests/<path>.py::<test>` as their proof, and a renamed or
deleted test must not leave a claim pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `name*` names every test whose name starts with `name`.
REFERENCE = re.compile(r"(tests/[A-Za-z0-9_/]+\.py)::([A-Za-z0-9_]+\*?)")


def _references() -> list[tuple[str, str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for path, name in REFERENCE.findall(doc.read_text(encoding="utf-8")):
            found.append((str(doc.relative_to(ROOT)), path, name))
    return found


def test_the_docs_name_tests() -> None:
    assert any(doc == "docs/replicas.md" for doc, _, _ in _references())


def test_every_seed_003_quirk_in_the_keycloak_page_names_a_test() -> None:
    """docs/idp/keycloak.md: each row of its seed-003 quirk table names the test that proves it."""
    text = (ROOT / "docs" / "idp" / "keycloak.md").read_text(encoding="utf-8")
    table = text.split("## Seed 003's quirks, and the test that proves each", 1)[1].split("\n## ", 1)[0]
    rows = [
        line for line in table.splitlines() if line.startswith("| ") and not line.startswith(("| seed 003", "| ---"))
    ]
    assert len(rows) >= 20, "the quirk table is gone or shrank"
    assert [row for row in rows if not REFERENCE.search(row)] == [], "a quirk without a tests/…::test"


def test_every_test_the_docs_name_exists() -> None:
    missing = []
    for doc, path, name in _references():
        source = ROOT / path
        stem, end = (name[:-1], "") if name.endswith("*") else (name, r"\b")
        defined = source.is_file() and re.search(
            rf"^\s*(async\s+)?def {re.escape(stem)}{end}|^class {re.escape(stem)}{end}",
            source.read_text(encoding="utf-8"),
            re.MULTILINE,
        )
        if not defined:
            missing.append(f"{doc}: {path}::{name}")
    assert not missing, "docs point at tests that do not exist:\n" + "\n".join(missing)
