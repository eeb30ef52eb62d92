"""What a test needs from outside Python (a Node package, Chromium, PostgreSQL): missing, the
test is skipped — or, under CI=true, failed, so CI never passes by skipping."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
NPM_FIX = "run `bash scripts/test.sh`, or `npm ci` in tests/node"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(problem: str) -> NoReturn:
    """Skip the test for `problem`; under CI fail it instead."""
    if in_ci():
        pytest.fail(problem)
    pytest.skip(problem)


def node_problems(*files: Path) -> list[str]:
    """What is missing to run these files of tests/node: node itself, or the files."""
    missing = [] if shutil.which("node") else ["node is not on PATH"]
    return missing + [f"{f.relative_to(REPO)} is missing" for f in files if not f.exists()]


def require_node_files(*files: Path) -> None:
    missing = node_problems(*files)
    if missing:
        unavailable("; ".join(missing) + f" ({NPM_FIX})")
