"""Fixtures for the doctor's tests: authgate processes (`authgate_factory`, shared with
tests/integration), a CIMD stand-in over HTTPS with a throw-away test CA (`standin`), and
deliberately broken deployments (`fake`, see fakes.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from authgate.doctor.standin import make_test_ca, serve_standin
from support.ports import free_port

from .fakes import Breakage, FakeDeployment, serve
from .support import Standin, integration

authgate_factory = integration.authgate_factory  # fixture: authgate_factory(AUTHGATE_X="y")
pytest_runtest_makereport = integration.pytest_runtest_makereport  # attach authgate logs on failure


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[Standin]:
    ca = make_test_ca(tmp_path / "test-ca")
    with serve_standin(ca) as (base, app):
        yield Standin(ca, base, app)


@pytest.fixture
def fake() -> Iterator[Callable[[Breakage], FakeDeployment]]:
    """`fake(breakage)` serves a broken deployment on a free loopback port for the test."""
    with ExitStack() as stack:
        yield lambda breakage: stack.enter_context(serve(breakage, free_port()))
