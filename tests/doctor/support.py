"""Helpers shared by the doctor's tests (imported by a name no other test directory uses).

`AuthgateServer` and friends come from tests/support/authgate_server.py (the package of shared
test helpers), so both directories share one implementation of "run `authgate serve` with
user alice".
"""

from __future__ import annotations

from authgate.doctor.standin import StandinApp, StandinCA
from support import authgate_server as integration

AuthgateServer = integration.AuthgateServer


class Standin:
    """A running CIMD stand-in: its base URL, what to tell the doctor and the server."""

    def __init__(self, ca: StandinCA, base: str, app: StandinApp) -> None:
        self.ca, self.base, self.app = ca, base, app

    @property
    def host_map(self) -> dict[str, str]:
        return {"chatgpt.com": self.base, "claude.ai": self.base}

    @property
    def cli_args(self) -> list[str]:
        return [arg for host in self.host_map for arg in ("--cimd-host-map", f"{host}={self.base}")]

    @property
    def server_env(self) -> dict[str, str]:
        """What authgate needs to fetch documents from the stand-in (loopback, test CA)."""
        return {"AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP": "true", "AUTHGATE_CIMD_CA_FILE": str(self.ca.ca_file)}
