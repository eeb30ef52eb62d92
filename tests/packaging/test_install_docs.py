"""Issue 13 done-when 7: no document tells users to install authgate from a package index.
No package of that name is published by this project (and another project could publish
one): authgate installs from a clone or a wheel built from it (docs/deployment.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support import requirements as req

REPO = Path(__file__).resolve().parents[2]

# `pip install -U authgate`, `pip install 'authgate[otel]'`, `pipx install authgate`,
# `uv tool install authgate`, `uv pip install authgate`, `uvx authgate`: the bare project name,
# which resolves on a package index. A path (`./`, `dist/authgate-….whl`, `-e .`) is fine.
_OPTIONS = r"(?:\s+-{1,2}[\w-]+(?:[ =](?![\"']?authgate)\S+)?)*"
INDEX_INSTALL = re.compile(
    r"\b(?:pip3?|python3?\s+-m\s+pip|uv\s+pip|uv\s+tool|pipx)\s+install" + _OPTIONS + r"\s+[\"']?authgate\b(?![-./\w])"
    r"|\buvx\s+(?:--\S+\s+)*authgate\b(?![-./\w])",
    re.IGNORECASE,
)
GENERATED = {Path("docs/requirements.md")}  # quotes the requirement's own wording


def _texts() -> list[Path]:
    paths = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    paths += sorted((REPO / "src" / "authgate").rglob("*.py")) + sorted((REPO / "scripts").glob("*"))
    return [p for p in paths if p.is_file() and p.relative_to(REPO) not in GENERATED]


@pytest.mark.requirement(req.ISSUE13_NO_PACKAGE_INDEX_INSTALL)
def test_no_document_installs_authgate_from_a_package_index() -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in _texts()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if INDEX_INSTALL.search(line)
    ]
    assert found == [], "install from the clone or a built wheel instead (docs/deployment.md):\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("pip install -U authgate", True),
        ("pip install --upgrade authgate", True),
        ("pip install 'authgate[otel]'", True),
        ("python -m pip install authgate==0.2", True),
        ("pipx install authgate", True),
        ("uvx authgate serve", True),
        ("uv tool install authgate", True),
        ("pip install -e .", False),
        ("pip install dist/authgate-0.1.0-py3-none-any.whl", False),
        ("pip install --force-reinstall dist/authgate-0.2.0-py3-none-any.whl", False),
        ("pipx install ./", False),
        ("uvx --from ./ authgate serve", False),
        ("pip install -e '.[test,otel]'", False),
        ("pip install authgate-peer-tool", False),
    ],
)
def test_the_check_tells_an_index_install_from_a_local_one(line: str, refused: bool) -> None:
    assert bool(INDEX_INSTALL.search(line)) is refused
