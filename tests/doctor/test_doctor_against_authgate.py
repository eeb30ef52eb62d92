"""The doctor against a real `authgate serve` (embedded authorization server, user alice):
every client profile passes with a headless sign-in on authgate's own forms, the CIMD path
runs against pinned copies of the clients' documents on a local HTTPS stand-in (a test CA
authgate trusts via `cimd_ca_file`), and the CLI's output, exit status and --json are what
scripts rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from authgate.doctor.findings import ClientReport, DoctorReport
from authgate.doctor.flow import DoctorOptions
from authgate.doctor.profiles import PROFILES
from authgate.doctor.runner import run_client, run_doctor
from authgate.doctor.standin import make_test_ca, serve_standin
from authgate.doctor.wire import Wire
from support import requirements as req

from .support import AuthgateServer, Standin

CLI_TIMEOUT = 180


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthgateServer, Standin]]:
    """One authgate (trusting the stand-in's test CA) and one CIMD stand-in for the module."""
    workdir = tmp_path_factory.mktemp("doctor-authgate")
    ca = make_test_ca(workdir / "test-ca")
    with serve_standin(ca) as (base, app):
        standin = Standin(ca, base, app)
        server = AuthgateServer(workdir / "authgate", extra_env=standin.server_env)
        server.add_user()
        server.start()
        try:
            yield server, standin
        finally:
            server.stop()


def _options(server: AuthgateServer, standin: Standin | None, *clients: str, **extra: object) -> DoctorOptions:
    return DoctorOptions(
        url=server.mcp_url,
        clients=clients or ("all",),
        username=server.username,
        password=server.password,
        cimd_host_map=standin.host_map if standin else {},
        **extra,
    )  # type: ignore[arg-type]


def _problems(report: DoctorReport | ClientReport) -> list[str]:
    clients = report.clients if isinstance(report, DoctorReport) else [report]
    return [
        f"{f.client} {f.step}: {f.status} {f.seen} | {f.fix}"
        for c in clients
        for f in c.findings
        if f.status in ("fail", "warn", "skip")
    ]


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_CIMD)
@pytest.mark.requirement(req.RFC9207_ISS)
@pytest.mark.requirement(req.RFC8707_2_AUDIENCE)
@pytest.mark.parametrize(
    "client",
    [
        "chatgpt",
        "claude",
        "claude-code",
        "inspector",
        "sdk",
    ],
)
async def test_every_profile_passes_against_authgate(served: tuple[AuthgateServer, Standin], client: str) -> None:
    server, standin = served
    report = await run_doctor(_options(server, standin, client))
    assert _problems(report) == []
    findings = {f.step: f for f in report.clients[0].findings}
    assert findings["mcp.tools_list"].status == "pass" and "whoami" in findings["mcp.tools_list"].seen
    if PROFILES[client].cimd_url:  # presented its (stand-in) document; authgate fetched it
        assert standin.base in findings["register"].seen
        assert any(path in standin.app.fetches for path in standin.app.documents)
    if client == "sdk":
        assert findings["mcp.discover"].status == "pass"  # 2026-07-28 as well as the handshake


@pytest.mark.requirement(req.ISSUE16_CIMD_PRIVATE_KEY_JWT)
async def test_chatgpt_cimd_document_authenticates_with_private_key_jwt(
    served: tuple[AuthgateServer, Standin],
) -> None:
    """ChatGPT's document declares private_key_jwt with a jwks_uri; authgate advertises the
    method, so the doctor (as ChatGPT would) signs its token request, with the stand-in's key
    that the stand-in's copy of the document points at."""
    server, standin = served
    report = await run_doctor(_options(server, standin, "chatgpt"))
    token = report.clients[0].step("token")
    assert token is not None and token.status == "pass", _problems(report)
    assert "private_key_jwt" in token.seen
    assert "/.well-known/authgate-doctor-standin-jwks.json" in standin.app.fetches


@pytest.mark.requirement(req.RFC7591_3_2_1_CLIENT_INFORMATION)
@pytest.mark.requirement(req.RFC6749_2_3_1_CLIENT_PASSWORD)
async def test_chatgpt_and_claude_register_by_dcr_when_cimd_is_off(
    authgate_factory: Callable[..., AuthgateServer],
) -> None:
    server = authgate_factory(AUTHGATE_CIMD_ENABLED="false")
    report = await run_doctor(_options(server, None, "chatgpt", "claude"))
    assert _problems(report) == []
    tokens = {c.client: c.step("token") for c in report.clients}
    assert "client_secret_basic" in tokens["chatgpt"].seen  # type: ignore[union-attr]
    assert "client_secret_post" in tokens["claude"].seen  # type: ignore[union-attr]
    assert [r.method for r in report.registrations] == ["dcr", "dcr"]
    assert all("RFC 7592" in r.outcome for r in report.registrations)


def _cli(server: AuthgateServer, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authgate", "doctor", server.mcp_url, *args],
        input=stdin,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


def test_cli_passes_prints_progress_and_never_echoes_the_password(served: tuple[AuthgateServer, Standin]) -> None:
    server, standin = served
    done = _cli(
        server,
        "--client",
        "claude-code",
        "--client",
        "sdk",
        "--user",
        server.username,
        "--password-stdin",
        *standin.cli_args,
        stdin=server.password + "\n",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Claude Code [claude-code]" in done.stdout and "PASS  mcp.tools_list" in done.stdout
    assert "exit status 0" in done.stdout
    assert server.password not in done.stdout + done.stderr
    assert "Clients registered at the server" in done.stdout and "deleted (RFC 7592)" in done.stdout


@pytest.mark.requirement(req.ISSUE16_DOCTOR_LEAVES_NO_CLIENT)
@pytest.mark.requirement(req.RFC7592_2_3_DELETE)
def test_cli_json_reports_every_step_and_the_registrations(served: tuple[AuthgateServer, Standin]) -> None:
    server, standin = served
    done = _cli(
        server,
        "--client",
        "inspector",
        "--json",
        "--user",
        server.username,
        "--password-stdin",
        stdin=server.password + "\n",
    )
    report = json.loads(done.stdout)
    assert done.returncode == report["exit_status"] == 0, done.stdout
    steps = [f["step"] for f in report["clients"][0]["findings"]]
    assert steps[:3] == ["url.https", "mcp.challenge", "cors.mcp"] and "cors.oauth" in steps
    assert report["registrations"] == [
        {
            "client": "inspector",
            "client_id": report["registrations"][0]["client_id"],
            "method": "dcr",
            "rfc7592": True,
            "outcome": "deleted (RFC 7592)",
        }
    ]
    cleanup = report["clients"][0]["findings"][-1]
    assert cleanup["step"] == "register.cleanup" and cleanup["status"] == "pass"
    # the doctor left no client behind at authgate
    listed = server.cli("clients", "list", "--json")
    assert report["registrations"][0]["client_id"] not in listed.stdout, listed.stdout


def test_without_credentials_the_doctor_says_what_it_skipped_and_why(served: tuple[AuthgateServer, Standin]) -> None:
    server, standin = served
    done = _cli(server, "--client", "sdk", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout
    findings = {f["step"]: f for f in report["clients"][0]["findings"]}
    assert findings["authorize"]["status"] == "pass" and "sign-in skipped" in findings["authorize"]["seen"]
    for step in ("token", "token.claims", "mcp.initialize", "mcp.tools_list", "mcp.discover"):
        assert findings[step]["status"] == "skip" and "--user" in findings[step]["seen"], findings[step]
    assert findings["mcp.invalid_token"]["status"] == "pass"


async def test_a_token_given_with_token_is_used_instead_of_signing_in(served: tuple[AuthgateServer, Standin]) -> None:
    server, _ = served
    wire = Wire()
    try:  # get a real token the way the SDK profile would, then hand it to a second run
        _, flow = await run_client(PROFILES["sdk"], _options(server, None, "sdk"), wire)
    finally:
        await wire.aclose()
    assert flow.access_token
    report = await run_doctor(DoctorOptions(url=server.mcp_url, clients=("sdk",), token=flow.access_token))
    findings = {f.step: f for f in report.clients[0].findings}
    assert findings["authorize"].status == "skip" and "--token" in findings["authorize"].seen
    assert findings["token"].status == "info"
    assert findings["token.claims"].status == "pass"
    assert findings["mcp.tools_list"].status == "pass" and findings["mcp.discover"].status == "pass"
    assert report.exit_status() == 0


def test_a_wrong_password_is_named_at_the_authorize_step(
    served: tuple[AuthgateServer, Standin], tmp_path: Path
) -> None:
    server, _ = served
    done = _cli(
        server,
        "--client",
        "inspector",
        "--json",
        "--user",
        server.username,
        "--password-stdin",
        stdin="wrong-password\n",
    )
    report = json.loads(done.stdout)
    assert done.returncode == 1
    failed = next(f for f in report["clients"][0]["findings"] if f["status"] == "fail")
    assert failed["step"] == "authorize", failed
    assert "wrong-password" not in done.stdout + done.stderr
