"""The fixtures of tests/integration. They live in `authgate_server.py`, a uniquely named
module on the test path (pyproject: pythonpath), so other test directories reuse them and no
test depends on which `conftest` module was imported last."""

from authgate_server import (  # noqa: F401 - re-exported for pytest
    authgate,
    authgate_factory,
    free_port,
    loopback_app,
    pytest_runtest_makereport,
)
