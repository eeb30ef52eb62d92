"""The fixtures of tests/integration. They live in tests/support/authgate_server.py, the package
of shared test helpers, so other test directories reuse them and no test depends on which
`conftest` module was imported last."""

from support.authgate_server import (  # noqa: F401 - re-exported for pytest
    authgate,
    authgate_factory,
    free_port,
    loopback_app,
    pytest_runtest_makereport,
)
