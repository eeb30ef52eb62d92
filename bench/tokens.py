"""Access tokens for the benchmarks' load generators."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def machine_token(base: str, data_dir: Path) -> str:
    """A client_credentials token of a machine client made with `authgate clients add`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "authgate",
            "clients",
            "add",
            "bench",
            "--grant",
            "client_credentials",
            "--scopes",
            "mcp",
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = dict(line.split("\t", 1) for line in out.splitlines())
    tok = httpx.post(
        f"{base}/token", data={"grant_type": "client_credentials"}, auth=(fields["client_id"], fields["client_secret"])
    )
    return str(tok.json()["access_token"])
