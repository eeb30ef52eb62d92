#!/usr/bin/env python3
"""Run `authgate doctor` against a freshly started `authgate serve` and keep what it printed.

Starts, in a temporary directory: a CIMD stand-in (HTTPS with a throw-away test CA, serving
the pinned ChatGPT / Claude / Claude Code client documents) and `authgate serve` trusting that
CA, with user alice. Then runs

    authgate doctor URL --user alice --password-stdin --cimd-host-map chatgpt.com=… --cimd-host-map claude.ai=…

and writes the command and its output to docs/doctor-output.txt (or --output PATH), which is
where the README's sample output comes from. CI runs this script (tests/doctor/test_doctor_demo.py).

    .venv/bin/python scripts/doctor-demo.py [--output PATH]

Exits 0 when the doctor ran (whatever it found), 2 when the setup failed. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from authgate.doctor.standin import make_test_ca, serve_standin

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30.0
DOCTOR_TIMEOUT = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"doctor-demo: authgate exited with {proc.returncode} at start")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"doctor-demo: authgate did not answer /health within {START_TIMEOUT:g}s")


def run(output: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="authgate-doctor-demo-") as tmp:
        work = Path(tmp)
        ca = make_test_ca(work / "test-ca")
        with serve_standin(ca) as (standin, _):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
            env.update(
                AUTHGATE_DATA_DIR=str(work / "data"),
                AUTHGATE_PORT=str(port),
                AUTHGATE_PUBLIC_URL=base,
                AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP="true",
                AUTHGATE_CIMD_CA_FILE=str(ca.ca_file),
                AUTHGATE_LOG_LEVEL="warning",
                PYTHONUNBUFFERED="1",
            )
            password = secrets.token_urlsafe(16)
            authgate = [sys.executable, "-m", "authgate"]
            subprocess.run(
                [*authgate, "users", "add", "alice", "--password-stdin"],
                input=password + "\n",
                env=env,
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
            )
            with (work / "serve.log").open("wb") as log:
                server = subprocess.Popen(
                    [*authgate, "serve"],
                    env=env,
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            try:
                wait_healthy(base, server)
                shown = [
                    "authgate",
                    "doctor",
                    f"{base}/mcp",
                    "--user",
                    "alice",
                    "--password-stdin",
                    "--cimd-host-map",
                    f"chatgpt.com={standin}",
                    "--cimd-host-map",
                    f"claude.ai={standin}",
                ]
                doctor = subprocess.run(
                    [*authgate, *shown[1:]],
                    input=password + "\n",
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=DOCTOR_TIMEOUT,
                )
            finally:
                server.terminate()
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait(timeout=10)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(f"$ {' '.join(shown)}\n{doctor.stdout}")
    print(f"doctor-demo: `authgate doctor` exited {doctor.returncode}; output written to {output}")
    if doctor.returncode not in (0, 1):
        print(doctor.stderr, file=sys.stderr)
        return 2
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "doctor-output.txt")
    return run(parser.parse_args().output)


if __name__ == "__main__":
    raise SystemExit(main())
