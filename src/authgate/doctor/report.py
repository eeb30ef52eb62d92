"""Rendering: a readable table printed as the steps run, a summary with the clients that were
registered, and `--json` for scripts."""

from __future__ import annotations

import json
import textwrap
from typing import TextIO

from authgate.doctor.findings import ClientReport, DoctorReport, Finding, Status
from authgate.doctor.profiles import ClientProfile
from authgate.masking import masked_url

_LABEL: dict[Status, str] = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "skip", "info": "info"}
_STEP_WIDTH = 27
_INDENT = 2 + 4 + 2 + _STEP_WIDTH + 1


def _wrap(text: str, width: int) -> list[str]:
    # lines break between words only: a URL, a flag (--cimd-host-map) or a path stays whole,
    # so it can be copied from the terminal
    return textwrap.wrap(text, width=max(40, width - _INDENT), break_long_words=False, break_on_hyphens=False)


def finding_lines(finding: Finding, width: int = 110) -> list[str]:
    head = f"  {_LABEL[finding.status]}  {finding.step:<{_STEP_WIDTH}} "
    lines = _wrap(finding.seen, width) or [""]
    out = [head + lines[0]] + [" " * _INDENT + line for line in lines[1:]]
    if finding.fix and finding.status != "pass":
        out += [" " * _INDENT + line for line in _wrap("fix: " + finding.fix, width)]
    return out


class ProgressPrinter:
    """Prints each client's header and each finding the moment it is known."""

    def __init__(self, out: TextIO, *, width: int = 110) -> None:
        self.out, self.width = out, width

    def header(self, url: str) -> None:
        print(f"authgate doctor: {masked_url(url)}", file=self.out, flush=True)

    def client(self, profile: ClientProfile) -> None:
        print(f"\n{profile.label} [{profile.name}]", file=self.out, flush=True)

    def finding(self, finding: Finding) -> None:
        print("\n".join(finding_lines(finding, self.width)), file=self.out, flush=True)


def _client_summary(client: ClientReport) -> str:
    first = client.first("fail") or client.first("warn")
    where = f" (first at {first.step})" if first is not None and first.status == client.status else ""
    return f"  {client.label:<30} {_LABEL[client.status]}{where}"


def summary(report: DoctorReport, *, strict: bool = False) -> str:
    lines = ["", "Summary"]
    lines += [_client_summary(c) for c in report.clients]
    if report.registrations:
        lines += ["", "Clients registered at the server"]
        lines += [f"  {r.client:<12} {r.method.upper():<5} {r.client_id}  {r.outcome}" for r in report.registrations]
    fails, warns, skips = report.count("fail"), report.count("warn"), report.count("skip")
    code = report.exit_status(strict=strict)
    rule = " (--strict: warnings count)" if strict else ""
    lines += ["", f"{fails} failed, {warns} warned, {skips} skipped; exit status {code}{rule}"]
    if fails:  # the server's side of each failure, when the server is authgate (docs/attempts.md)
        lines.append("On an authgate server, `authgate attempts --failed` shows each failed connection as it saw it.")
    return "\n".join(lines)


def render_text(report: DoctorReport, *, strict: bool = False, width: int = 110) -> str:
    """The whole report at once (what the progress printer shows over time, plus the summary)."""
    lines = [f"authgate doctor: {masked_url(report.url)}"]
    for client in report.clients:
        lines += ["", f"{client.label} [{client.client}]"]
        for finding in client.findings:
            lines += finding_lines(finding, width)
    return "\n".join(lines) + "\n" + summary(report, strict=strict) + "\n"


def render_json(report: DoctorReport, *, strict: bool = False) -> str:
    return json.dumps(report.to_dict(strict=strict), indent=2)
