"""The benchmarks' smoke test (issue 18, "CI budget"): `python -m bench all --quick` runs from a
clean state and produces every row of every table — its numbers are not looked at (tests never
assert on timings; the quick run's loads are too small to mean anything).

It needs wrk, taskset and the FastMCP venv (.bench-venv, `bash scripts/bench-deps.sh`;
scripts/test.sh runs it) and PostgreSQL ($AUTHGATE_TEST_POSTGRES_URL) for the flows' PostgreSQL
row. Missing, the test is skipped, or failed under CI=true; the bench itself fails loudly then.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.needs import REPO, unavailable

# table → the rows it must have, by its second column (what the row is about)
EXPECTED = {
    "library": ["2025-11-25", "2026-07-28"],
    "gateway": ["(a) upstream CPU 0, gateway CPU 1, wrk unpinned", "(b) upstream CPU 0, gateway CPU 1, wrk on CPU 1"],
    "gateway-latency": ["(a) upstream CPU 0, gateway CPU 1, wrk unpinned"] * 2
    + ["(b) upstream CPU 0, gateway CPU 1, wrk on CPU 1"] * 2,
    "flows": [
        "authgate, SQLite",
        "authgate, PostgreSQL",
        "FastMCP InMemoryOAuthProvider",
        "MCP SDK auth routes + in-memory provider",
    ],
    "memory": ["`authgate serve` (embedded + knowledge base)", "`authgate serve --upstream` (gateway)"],
    "startup": ["`authgate --version`", "`authgate users list`"],
}
EXPECTED["flow-steps"] = EXPECTED["flow-memory"] = EXPECTED["flows"]
# combinations known not to run, with the reason the row gives (none today)
MAY_NOT_RUN: set[tuple[str, str]] = set()


def _prerequisites() -> None:
    bench_venv = Path(os.environ.get("BENCH_VENV", REPO / ".bench-venv"))
    missing = [tool for tool in ("wrk", "taskset") if not shutil.which(tool)]
    if not (bench_venv / "bin" / "python").exists():
        missing.append(f"the FastMCP venv {bench_venv}")
    if not os.environ.get("AUTHGATE_TEST_POSTGRES_URL"):
        missing.append("PostgreSQL (AUTHGATE_TEST_POSTGRES_URL)")
    if missing:
        unavailable(f"`python -m bench all --quick` needs {', '.join(missing)}: run `bash scripts/bench-deps.sh`")


@pytest.mark.timeout(900)  # a hang bound, not a timing: the run itself takes about two minutes
def test_bench_all_quick_produces_every_row(tmp_path: Path) -> None:
    _prerequisites()
    out = tmp_path / "tables.json"
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    print(run.stdout[-6000:], run.stderr[-6000:], f"(ran {time.monotonic() - start:.0f} s)", sep="\n")
    assert run.returncode == 0, run.stderr[-4000:]
    tables = json.loads(out.read_text())
    assert sorted(tables) == sorted(EXPECTED)
    doc = (REPO / "docs" / "benchmarks.md").read_text()
    for key, table in tables.items():  # `--write` puts the rows under this head and marker
        head = "| " + " | ".join(table["columns"]) + " |"
        assert f"{head}\n|{' --- |' * len(table['columns'])}\n<!-- bench:{key} rows -->" in doc, key
    for key, about in EXPECTED.items():
        rows = tables[key]["rows"]
        assert [row[1] for row in rows] == about, key
        for row in rows:
            assert len(row) == len(tables[key]["columns"])
            assert all(cell.strip() for cell in row), (key, row)
            assert all(word in row[0] for word in ("cores", "authgate", "mcp", "fastmcp", "Python")), row[0]
            for cell in row:
                if cell.startswith(("cannot run", "skipped")):
                    assert (key, row[1]) in MAY_NOT_RUN, (key, row[1], cell)
