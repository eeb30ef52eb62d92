"""The fixtures of tests/outbound, from tests/support/authgate_server.py (as tests/integration's)."""

from support.authgate_server import (  # noqa: F401 - re-exported for pytest
    authgate_factory,
    pytest_runtest_makereport,
)
