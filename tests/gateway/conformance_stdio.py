"""The conformance upstream (conformance_upstream.py) over stdio, for `authgate serve -- python THIS`:
the stdio-bridge leg of test_conformance.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, so `gateway.…` imports

from gateway.conformance_upstream import build_conformance_server  # noqa: E402

if __name__ == "__main__":
    build_conformance_server().run("stdio")
