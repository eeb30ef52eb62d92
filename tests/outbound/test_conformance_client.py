"""authgate's outbound OAuth client against `@modelcontextprotocol/conformance`'s client scenarios.

Every `auth/*` scenario that the suite's `requirements/2026-07-28.yaml` lists for the client,
at each wire version the suite's `list` gives it, and the two 2025-03-26 back-compat
scenarios, each run as `conformance client --scenario S --spec-version V` with
tests/outbound/conformance_client.py as the command, a few processes at a time. Every check
must be SUCCESS (INFO checks are the suite's logs); a scenario that cannot apply would be
listed in NOT_APPLICABLE with its reason (none is today).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gateway.conformance_runs import CONFORMANCE, CONFORMANCE_CLI, NODE22, require_conformance
from support import requirements as req

DRIVER = Path(__file__).with_name("conformance_client.py")
BACKCOMPAT = ("auth/2025-03-26-oauth-metadata-backcompat", "auth/2025-03-26-oauth-endpoint-fallback")
NOT_APPLICABLE: dict[str, str] = {}  # scenario → why it cannot apply to authgate's client
PARALLEL = 8  # runs at a time: each run is two processes mostly waiting (~1.5 s CPU a run)
RUN_TIMEOUT = 150.0  # one scenario run, bounded; 5-7 s alone, ~26 s four at a time at load 20
CLIENT_TIMEOUT_MS = "30000"
_LISTED = re.compile(r"^\s*-\s+(?P<name>auth/\S+)\s+\[(?P<versions>[^\]]*)\]")


def scenario_versions() -> dict[str, tuple[str, ...]]:
    """`auth/*` client scenario → the wire versions the suite runs it at (its `list`)."""
    listing = subprocess.run(
        [str(NODE22), str(CONFORMANCE_CLI), "list"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    client_part = listing.split("Client scenarios", 1)[1].split("Authorization server scenarios", 1)[0]
    found = {}
    for line in client_part.splitlines():
        if match := _LISTED.match(line):
            found[match["name"]] = tuple(v.strip() for v in match["versions"].split(",") if v.strip())
    return found


def required_scenarios() -> list[str]:
    required = yaml.safe_load((CONFORMANCE / "requirements" / "2026-07-28.yaml").read_text())
    return [s for s in required["client"] if s.startswith("auth/")] + list(BACKCOMPAT)


def _start(scenario: str, version: str, out: Path) -> subprocess.Popen[bytes]:
    out.mkdir(parents=True)
    command = f"{sys.executable} {DRIVER}"
    args = ["client", "--command", command, "--scenario", scenario, "--spec-version", version]
    return subprocess.Popen(
        [str(NODE22), str(CONFORMANCE_CLI), *args, "--timeout", CLIENT_TIMEOUT_MS, "-o", str(out)],
        cwd=out,
        stdout=(out / "cli.stdout").open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def _problems(label: str, out: Path) -> list[str]:
    found = sorted(out.rglob("checks.json"))
    if not found:
        return [f"{label}: no checks.json ({(out / 'cli.stdout').read_text(errors='replace')[-1500:]})"]
    checks = json.loads(found[0].read_text())
    bad = [c for c in checks if c["status"] not in ("SUCCESS", "INFO")]
    return [f"{label}: {c['id']} {c['status']}: {c.get('description', '')[:200]}" for c in bad]


def run_all(runs: list[tuple[str, str]], root: Path) -> list[str]:
    """Every (scenario, version), PARALLEL at a time; every check not SUCCESS or INFO."""
    pending, active, problems = list(runs), [], []
    while pending or active:
        while pending and len(active) < PARALLEL:
            scenario, version = pending.pop(0)
            out = root / f"{scenario.replace('/', '_')}@{version}"
            active.append((f"{scenario}@{version}", out, _start(scenario, version, out), time.monotonic()))
        for item in list(active):
            label, out, proc, started = item
            if proc.poll() is None and time.monotonic() - started < RUN_TIMEOUT:
                continue
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
                problems.append(f"{label}: did not finish within {RUN_TIMEOUT}s")
            else:
                problems.extend(_problems(label, out))
            active.remove(item)
        time.sleep(0.1)
    return problems


@pytest.mark.timeout(900)
@pytest.mark.requirement(req.ISSUE15_OUTBOUND_CONFORMANCE_CLIENT)
def test_outbound_client_passes_every_required_auth_scenario(tmp_path: Path) -> None:
    require_conformance()
    versions = scenario_versions()
    scenarios = [s for s in required_scenarios() if s not in NOT_APPLICABLE]
    missing = [s for s in scenarios if s not in versions]
    assert not missing, f"the suite does not list {missing}"
    runs = [(s, v) for s in scenarios for v in versions[s]]
    assert len(runs) >= 40, runs  # 25 scenarios at 1-3 versions each, and the two back-compat ones
    problems = run_all(runs, tmp_path)
    assert not problems, "\n".join(problems)
