"""Suite-wide hooks: the closing summary says how many PostgreSQL-backed tests ran, so a run
that silently lost its database shows it (scripts/test.sh starts the server); collection fails
when a `requirement` tag is not a constant of tests/support/requirements.py."""

from __future__ import annotations

from collections import Counter

import pytest

from support.requirements import tag_problems

_postgres_outcomes: Counter[str] = Counter()


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect, so every collected tag is checked
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # one registry, so docs/requirements.md (scripts/requirements_matrix.py) names every tagged test
    problems = tag_problems(items)
    if problems:
        raise pytest.UsageError("requirement tags outside the registry:\n" + "\n".join(problems))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "postgres" not in report.keywords:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _postgres_outcomes[report.outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(_postgres_outcomes.items()))
    terminalreporter.write_line(f"postgres-marked tests: {counts or 'none ran'}")
