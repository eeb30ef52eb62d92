"""What `authgate idp check` was asked (`CheckOptions`) and what it found (`CheckReport`), as text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from authgate.idp.profiles import IdpProfile
from authgate.masking import masked_url

__all__ = ["CheckOptions", "CheckReport", "Finding", "Level", "render_text", "trap_fix"]

Level = Literal["ok", "info", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    level: Level
    message: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class CheckOptions:
    issuer: str
    profile: str = "generic"
    register: bool = False
    client_id: str | None = None
    client_secret: str | None = None
    resource: str | None = None
    scope: str | None = None
    scopes: tuple[str, ...] = ("mcp",)  # what authgate advertises (its `scopes` setting): must exist at the IdP
    id_jag: bool = False  # the IdP is meant to issue ID-JAGs for authgate (id_jag.py)


@dataclass(slots=True)
class CheckReport:
    issuer: str
    profile: str
    findings: list[Finding] = field(default_factory=list)
    registered_client_id: str | None = None
    settled: set[str] = field(default_factory=set)  # trap codes a probe checked directly (not listed again)

    @property
    def failed(self) -> bool:
        return any(f.level == "fail" for f in self.findings)

    def add(self, code: str, level: Level, message: str, fix: str | None = None) -> None:
        self.findings.append(Finding(code, level, message, fix))

    def codes(self, *levels: Level) -> list[str]:
        return [f.code for f in self.findings if not levels or f.level in levels]

    def as_dict(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "profile": self.profile,
            "ok": not self.failed,
            "registered_client_id": self.registered_client_id,
            "findings": [asdict(f) for f in self.findings],
        }


def trap_fix(profile: IdpProfile, code: str, default: str) -> str:
    """The fix the profile names for its trap `code`, else `default`."""
    return next((t.fix for t in profile.traps if t.code == code), default)


_LABELS = {"ok": "ok  ", "info": "info", "warn": "WARN", "fail": "FAIL"}


def render_text(report: CheckReport) -> str:
    lines = [f"authgate idp check {masked_url(report.issuer)} (profile {report.profile})"]
    for f in report.findings:
        lines.append(f"  {_LABELS[f.level]}  {f.code}: {f.message}")
        if f.fix and f.level != "ok":
            lines.append(f"        fix: {f.fix}")
    fails, warns = report.codes("fail"), report.codes("warn")
    lines.append(
        f"result: {len(fails)} failure(s), {len(warns)} warning(s)"
        + (f"; test client {report.registered_client_id} was registered" if report.registered_client_id else "")
    )
    return "\n".join(lines)
