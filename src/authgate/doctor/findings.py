"""What the doctor reports: one `Finding` per step, grouped per client, and the clients it
registered along the way."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from authgate.masking import masked_url

Status = Literal["pass", "warn", "fail", "skip", "info"]

# Worst first: a client's overall status is the first of these any of its findings has.
SEVERITY: tuple[Status, ...] = ("fail", "warn", "pass", "info", "skip")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a step returns: its status, what it saw (one line) and the fix (one line)."""

    status: Status
    seen: str
    fix: str = ""


def ok(seen: str) -> Verdict:
    return Verdict("pass", seen)


def warn(seen: str, fix: str) -> Verdict:
    return Verdict("warn", seen, fix)


def fail(seen: str, fix: str) -> Verdict:
    return Verdict("fail", seen, fix)


def skip(seen: str) -> Verdict:
    return Verdict("skip", seen)


def info(seen: str, fix: str = "") -> Verdict:
    return Verdict("info", seen, fix)


def excerpt(text: str, limit: int = 160) -> str:
    """`text` on one line for a finding, cut at a word boundary and marked with "…" when it
    is longer than `limit` (a word is never cut, unless it alone is longer than `limit`)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    head = flat[: limit + 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else flat[:limit]
    return cut.rstrip(" ,;:") + " …"


@dataclass(frozen=True, slots=True)
class Finding:
    """One step's verdict for one client."""

    client: str
    step: str
    status: Status
    seen: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(slots=True)
class Registration:
    """A client the doctor registered (DCR) or presented (CIMD) at the server under test."""

    client: str
    client_id: str
    method: Literal["dcr", "cimd"]
    registration_client_uri: str | None = None
    registration_access_token: str | None = field(default=None, repr=False)
    outcome: str = "still registered"

    def to_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "client_id": self.client_id,
            "method": self.method,
            "rfc7592": self.registration_client_uri is not None,
            "outcome": self.outcome,
        }


@dataclass(slots=True)
class ClientReport:
    """Every finding for one client profile, in the order the steps ran."""

    client: str
    label: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def status(self) -> Status:
        present = {f.status for f in self.findings}
        return next((s for s in SEVERITY if s in present), "skip")

    def first(self, status: Status) -> Finding | None:
        return next((f for f in self.findings if f.status == status), None)

    def step(self, step_id: str) -> Finding | None:
        return next((f for f in self.findings if f.step == step_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "label": self.label,
            "status": self.status,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(slots=True)
class DoctorReport:
    url: str
    clients: list[ClientReport] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for c in self.clients for f in c.findings if f.status == status)

    def exit_status(self, *, strict: bool = False) -> int:
        """0 only when nothing failed (and, with `strict`, nothing warned)."""
        if self.count("fail") or (strict and self.count("warn")):
            return 1
        return 0

    def to_dict(self, *, strict: bool = False) -> dict[str, Any]:
        return {
            "url": masked_url(self.url),
            "clients": [c.to_dict() for c in self.clients],
            "registrations": [r.to_dict() for r in self.registrations],
            "summary": {s: self.count(s) for s in SEVERITY},
            "strict": strict,
            "exit_status": self.exit_status(strict=strict),
        }
