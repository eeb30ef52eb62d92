"""`authgate doctor`: replay what real MCP clients (ChatGPT, Claude, Claude Code, the
Inspector, the MCP SDK) do against any MCP server, and name the step that fails.

    profiles.py   what each client is known to do (redirect URIs, CIMD documents, auth methods)
    steps/        one small function per step: discovery, registration, authorization, mcp, cors
    runner.py     runs a profile's steps in order; skips what cannot run, with the reason
    login.py      headless sign-in on HTML forms, or --interactive on a loopback callback
    report.py     the table printed as it runs, the summary, --json
    standin.py    TESTING: a local HTTPS host serving the pinned CIMD documents (test CA)

Framework-free: httpx for HTTP, no Starlette (except in standin.py).
"""

from __future__ import annotations

import typing as _typing

from authgate import _lazy_exports
from authgate.doctor.findings import ClientReport, DoctorReport, Finding, Registration, Status
from authgate.doctor.profiles import PROFILES, ClientProfile

if _typing.TYPE_CHECKING:
    from authgate.doctor.flow import DoctorOptions
    from authgate.doctor.runner import run_doctor

__all__ = [
    "PROFILES",
    "ClientProfile",
    "ClientReport",
    "DoctorOptions",
    "DoctorReport",
    "Finding",
    "Registration",
    "Status",
    "run_doctor",
]

# the flow and runner load httpx: resolved on first use (PEP 562), so the CLI can offer the
# profile names (`--client`) without loading them
_LAZY = {"DoctorOptions": "authgate.doctor.flow", "run_doctor": "authgate.doctor.runner"}

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())
