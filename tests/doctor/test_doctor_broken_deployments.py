"""The doctor against deliberately broken deployments: it names exactly the broken step (the
first step that is not a pass, per client), exits non-zero for failures (warnings only with
--strict), and agrees with what the real `mcp` SDK client experiences against the same
deployment: the doctor's `sdk` profile fails exactly when the SDK fails.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from authgate.cli.main import main
from support import requirements as req

from .fakes import Breakage, FakeDeployment, broken
from .sdk_client import run_sdk_client

ALL = ("chatgpt", "claude", "claude-code", "inspector", "sdk")


@dataclass(frozen=True)
class Case:
    breakage: Breakage
    first: dict[str, tuple[str, str]]  # client -> (step, status) of its first non-pass finding
    sdk_fails_with: str | None  # None: the real SDK client connects; else a fragment of its error
    exit_status: int
    fix_mentions: dict[str, str] = field(default_factory=dict)  # client -> text its fix must contain


def _all(step: str, status: str = "fail") -> dict[str, tuple[str, str]]:
    return {c: (step, status) for c in ALL}


CASES = {
    "prm-resource-differs": pytest.param(
        Case(broken(prm_resource="{base}/other"), _all("prm.resource"), "does not match", 1),
        marks=pytest.mark.requirement(req.RFC9728_3_3_RESOURCE_IDENTICAL),
    ),
    "prm-resource-trailing-slash": pytest.param(
        Case(
            broken(prm_resource="{url}/"),
            {
                "chatgpt": ("prm.resource", "fail"),
                "claude": ("prm.resource", "fail"),
                # the SDKs treat the slash as equal, then send the PRM's form and the AS refuses it
                "claude-code": ("prm.resource", "warn"),
                "inspector": ("prm.resource", "warn"),
                "sdk": ("prm.resource", "warn"),
            },
            "invalid_target",
            1,
        ),
        marks=pytest.mark.requirement(req.RFC9728_3_3_RESOURCE_IDENTICAL),
    ),
    "prm-only-at-root": pytest.param(
        Case(
            broken(prm_at=frozenset({"root"}), header_metadata="root"),
            _all("prm.discovery", "warn"),
            None,
            0,
            {"sdk": "path-suffixed"},
        ),
        marks=pytest.mark.requirement(req.MCP_2025_11_25_AUTH_PRM_DISCOVERY),
    ),
    "prm-only-path-suffixed": pytest.param(
        Case(
            broken(prm_at=frozenset({"path"})), _all("prm.discovery", "warn"), None, 0, {c: "Claude Code" for c in ALL}
        ),
        marks=pytest.mark.requirement(req.MCP_2025_11_25_AUTH_PRM_DISCOVERY),
    ),
    "challenge-without-resource-metadata": pytest.param(
        Case(
            broken(header_metadata="none"), _all("mcp.www_authenticate", "warn"), None, 0, {"sdk": "resource_metadata"}
        ),
        marks=pytest.mark.requirement(req.RFC9728_5_1_WWW_AUTHENTICATE),
    ),
    "issuer-mismatch": pytest.param(
        Case(broken(issuer="{base}/other"), _all("as.issuer"), "issuer mismatch", 1),
        marks=pytest.mark.requirement(req.RFC8414_3_3_ISSUER_IDENTICAL),
    ),
    "s256-not-advertised": pytest.param(
        Case(
            broken(s256=False),
            {
                "chatgpt": ("as.pkce", "fail"),
                "claude": ("as.pkce", "fail"),
                "claude-code": ("as.pkce", "fail"),
                "inspector": ("as.pkce", "fail"),
                "sdk": ("as.pkce", "warn"),
            },
            None,
            1,
        ),
        marks=pytest.mark.requirement(req.MCP_2025_11_25_AUTH_S256_ADVERTISED),
    ),
    "no-registration-path": pytest.param(
        Case(
            broken(registration=False),
            {"inspector": ("register", "fail"), "sdk": ("register", "fail")},  # the others present CIMD
            "Registration failed: 404",
            1,
            {"inspector": "registration_endpoint"},
        ),
        marks=pytest.mark.requirement(req.MCP_2025_11_25_AUTH_CLIENT_REGISTRATION),
    ),
    "token-audience-wrong": pytest.param(
        Case(broken(token_aud="https://api.example.com"), _all("token.claims"), "401", 1, {c: "aud" for c in ALL}),
        marks=pytest.mark.requirement(req.RFC8707_2_AUDIENCE),
    ),
    "200-instead-of-401": pytest.param(
        Case(broken(open_without_token=True), _all("mcp.challenge"), None, 1),
        marks=pytest.mark.requirement(req.MCP_2025_11_25_AUTH_401_STARTS_SIGN_IN),
    ),
    "accept-not-handled": pytest.param(
        Case(broken(strict_accept=True), _all("mcp.initialize"), "406", 1, {c: "text/event-stream" for c in ALL}),
        marks=pytest.mark.requirement(req.MCP_2025_11_25_ACCEPT),
    ),
    "cors-missing-on-mcp": pytest.param(
        Case(broken(cors_on_mcp=False), {"inspector": ("cors.mcp", "fail")}, None, 1, {"inspector": "CORS"})
    ),
}


def run_doctor_cli(
    url: str, *extra: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    """`authgate doctor URL --json --user x --password-stdin` in-process; (exit status, report)."""
    monkeypatch.setattr("sys.stdin", io.StringIO("not-a-real-password\n"))
    capsys.readouterr()
    code = main(["doctor", url, "--json", "--user", "x", "--password-stdin", *extra])
    return code, json.loads(capsys.readouterr().out)


def first_non_pass(report: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    out = {}
    for client in report["clients"]:
        finding = next((f for f in client["findings"] if f["status"] in ("fail", "warn")), None)
        if finding is not None:
            out[client["client"]] = (finding["step"], finding["status"], finding["fix"])
    return out


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_doctor_names_the_broken_step_and_agrees_with_the_sdk(
    case: Case,
    fake: Callable[[Breakage], FakeDeployment],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = fake(case.breakage)
    code, report = run_doctor_cli(deployment.url, monkeypatch=monkeypatch, capsys=capsys)

    named = first_non_pass(report)
    assert {c: (step, status) for c, (step, status, _) in named.items()} == case.first
    for client, text in case.fix_mentions.items():
        assert text in named[client][2] or text in next(
            f["seen"]
            for c in report["clients"]
            if c["client"] == client
            for f in c["findings"]
            if f["step"] == named[client][0]
        ), (client, named[client])
    assert code == case.exit_status == report["exit_status"]

    if code == 0 and report["summary"]["warn"]:
        strict_code, _ = run_doctor_cli(deployment.url, "--strict", monkeypatch=monkeypatch, capsys=capsys)
        assert strict_code == 1, "--strict must fail on warnings"

    # The real client, against the same deployment.
    sdk = asyncio.run(run_sdk_client(deployment.url))
    sdk_report = next(c for c in report["clients"] if c["client"] == "sdk")
    doctor_says_sdk_fails = sdk_report["status"] == "fail"
    if case.breakage.open_without_token:
        # The SDK "connects" because it is never asked to sign in: exactly what the doctor reports.
        assert sdk.ok and not sdk.signed_in, sdk
        assert "never start" in next(f["seen"] for f in sdk_report["findings"] if f["step"] == "mcp.challenge")
    else:
        assert doctor_says_sdk_fails == (not sdk.ok), (sdk.error, sdk_report)
    if case.sdk_fails_with is not None:
        assert case.sdk_fails_with in sdk.error, sdk.error
    else:
        assert sdk.ok, sdk.error


def test_a_healthy_deployment_passes_for_every_client_and_the_sdk(
    fake: Callable[[Breakage], FakeDeployment],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = fake(broken())
    code, report = run_doctor_cli(deployment.url, "--strict", monkeypatch=monkeypatch, capsys=capsys)
    assert first_non_pass(report) == {}
    assert code == 0
    assert [c["status"] for c in report["clients"]] == ["pass"] * len(ALL)
    sdk = asyncio.run(run_sdk_client(deployment.url))
    assert sdk.ok and sdk.tools == ["echo"], sdk.error


def test_only_the_selected_client_is_replayed(
    fake: Callable[[Breakage], FakeDeployment],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = fake(broken(cors_on_mcp=False))
    code, report = run_doctor_cli(deployment.url, "--client", "sdk", monkeypatch=monkeypatch, capsys=capsys)
    assert [c["client"] for c in report["clients"]] == ["sdk"]
    assert code == 0, "CORS does not concern the SDK, which does not run in a browser"


@pytest.mark.requirement(req.RFC7592_2_3_DELETE)
def test_registered_clients_are_deleted_with_rfc7592_when_the_server_offers_it(
    fake: Callable[[Breakage], FakeDeployment],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = fake(broken(rfc7592=True, cimd=False))
    code, report = run_doctor_cli(deployment.url, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0
    assert [(r["client"], r["method"], r["rfc7592"], r["outcome"]) for r in report["registrations"]] == [
        (client, "dcr", True, "deleted (RFC 7592)") for client in ALL
    ]
    assert deployment.clients == {}, "every client the doctor registered is gone"
