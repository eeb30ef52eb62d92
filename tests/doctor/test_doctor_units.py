"""The doctor's pieces in isolation: challenge parsing, profiles and pinned documents, the
HTTPS rule, sign-in helpers, the interactive loopback callback, rendering and exit status."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest

from authgate.doctor import login
from authgate.doctor.findings import ClientReport, DoctorReport, Finding
from authgate.doctor.flow import DoctorOptions, Flow
from authgate.doctor.profiles import PROFILES, mapped_cimd_url, parse_host_map, pinned_document
from authgate.doctor.report import finding_lines, render_json, render_text
from authgate.doctor.standin import STANDIN_JWKS_PATH, standin_client_key, standin_documents
from authgate.doctor.steps import discovery
from authgate.doctor.wire import Wire, parse_challenges
from support import requirements as req
from support.ports import free_port


def test_bearer_challenge_params_are_parsed_with_quotes_commas_and_other_schemes() -> None:
    header = (
        'Basic realm="x", Bearer error="invalid_token", error_description="a \\"quoted\\", comma", '
        'scope="mcp files.read", resource_metadata="https://h/.well-known/oauth-protected-resource/mcp"'
    )
    challenges = parse_challenges(header)
    assert [c.scheme for c in challenges] == ["Basic", "Bearer"]
    bearer = challenges[1]
    assert bearer.get("error") == "invalid_token"
    assert bearer.get("error_description") == 'a "quoted", comma'
    assert bearer.get("scope") == "mcp files.read"
    assert bearer.get("RESOURCE_METADATA") == "https://h/.well-known/oauth-protected-resource/mcp"
    assert parse_challenges("Bearer")[0].params == {}


def test_cimd_urls_map_to_the_stand_in_and_the_documents_name_themselves() -> None:
    base = "https://127.0.0.1:8443"
    chatgpt = PROFILES["chatgpt"]
    assert mapped_cimd_url(chatgpt, {}) == "https://chatgpt.com/oauth/client.json"
    assert mapped_cimd_url(chatgpt, {"chatgpt.com": base}) == f"{base}/oauth/client.json"
    assert mapped_cimd_url(PROFILES["inspector"], {"chatgpt.com": base}) is None
    documents = standin_documents(base)
    jwks = documents.pop(STANDIN_JWKS_PATH)  # the stand-in's key set, for ChatGPT's private_key_jwt
    assert jwks["keys"][0]["kid"] == standin_client_key().kid and "d" not in jwks["keys"][0]
    assert documents["/oauth/client.json"]["jwks_uri"] == base + STANDIN_JWKS_PATH
    for path, document in documents.items():
        assert document["client_id"] == base + path  # CIMD: client_id equals the document URL
    assert pinned_document(chatgpt)["client_id"] == "https://chatgpt.com/oauth/client.json"
    assert pinned_document(PROFILES["claude-code"])["redirect_uris"] == [
        "http://localhost/callback",
        "http://127.0.0.1/callback",
    ]


def test_host_map_arguments_are_checked() -> None:
    assert parse_host_map(["Chatgpt.com=https://127.0.0.1:1"]) == {"chatgpt.com": "https://127.0.0.1:1"}
    with pytest.raises(ValueError, match="HOST=https"):
        parse_host_map(["chatgpt.com"])


@pytest.mark.requirement(req.OAUTH21_1_5_TLS)
@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("https://mcp.example.com/mcp", "pass"),
        ("http://127.0.0.1:8000/mcp", "pass"),
        ("http://localhost/mcp", "pass"),
        ("http://mcp.example.com/mcp", "fail"),
        ("ftp://x/mcp", "fail"),
    ],
)
async def test_plain_http_is_refused_outside_loopback(url: str, status: str) -> None:
    wire = Wire()
    try:
        flow = Flow(profile=PROFILES["claude"], options=DoctorOptions(url=url), wire=wire, url=url, port=1)
        assert (await discovery.url_https(flow)).status == status
    finally:
        await wire.aclose()


def test_the_redirect_uri_matches_any_port_on_loopback_only() -> None:
    assert login.lands_on("http://localhost:5555/callback?code=x", "http://localhost:1234/callback")
    assert not login.lands_on("http://localhost:5555/other", "http://localhost:1234/callback")
    assert login.lands_on(
        "https://chatgpt.com/connector_platform_oauth_redirect?code=x",
        "https://chatgpt.com/connector_platform_oauth_redirect",
    )
    assert not login.lands_on(
        "https://chatgpt.com:8443/connector_platform_oauth_redirect",
        "https://chatgpt.com/connector_platform_oauth_redirect",
    )


def test_page_text_skips_styles_and_scripts() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body><p>Unknown client</p>"
        "<script>var x=1</script><p>try again</p></body></html>"
    )
    assert login.page_text(html) == "Unknown client. Try again."  # each paragraph a sentence (issue 13)


async def test_interactive_sign_in_waits_for_the_browser_on_the_loopback_redirect() -> None:
    port = free_port()
    redirect = f"http://localhost:{port}/callback"
    printed: list[str] = []

    class Out:
        def write(self, text: str) -> None:
            printed.append(text)

        def flush(self) -> None:
            pass

    async def browser() -> None:
        for _ in range(100):  # bounded: the listener starts within a few ms
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    await http.get(f"http://127.0.0.1:{port}/callback?code=c1&state=s1&iss=https%3A%2F%2Fas")
                return
            except httpx.ConnectError:
                await asyncio.sleep(0.02)

    result, _ = await asyncio.gather(
        login.loopback_sign_in("https://as/authorize?x=1", redirect, timeout=10, out=Out()),  # type: ignore[arg-type]
        browser(),
    )
    assert result.params == {"code": "c1", "state": "s1", "iss": "https://as"}
    assert "https://as/authorize?x=1" in "".join(printed)


async def test_interactive_sign_in_gives_up_in_bounded_time() -> None:
    with pytest.raises(login.SignInError, match="within 0.2s"):
        await login.loopback_sign_in(
            "https://as/authorize", f"http://127.0.0.1:{free_port()}/cb", timeout=0.2, out=io.StringIO()
        )


def _report(*statuses: str) -> DoctorReport:
    client = ClientReport(
        "sdk",
        "SDK",
        [
            Finding("sdk", f"step{i}", s, f"seen {i}", f"fix {i}")  # type: ignore[arg-type]
            for i, s in enumerate(statuses)
        ],
    )
    return DoctorReport("https://h/mcp", [client])


@pytest.mark.parametrize(
    ("statuses", "plain", "strict"),
    [
        (("pass", "info", "skip"), 0, 0),
        (("pass", "warn"), 0, 1),
        (("warn", "fail"), 1, 1),
    ],
)
def test_exit_status_is_zero_only_without_failures_or_with_strict_without_warnings(
    statuses: tuple[str, ...],
    plain: int,
    strict: int,
) -> None:
    report = _report(*statuses)
    assert (report.exit_status(), report.exit_status(strict=True)) == (plain, strict)
    assert f"exit status {plain}" in render_text(report)
    assert ("`authgate attempts --failed`" in render_text(report)) == bool(plain)  # the server's side (issue 13)
    assert f'"exit_status": {strict}' in render_json(report, strict=True)


def test_a_finding_line_shows_status_step_what_was_seen_and_the_fix() -> None:
    lines = finding_lines(Finding("x", "prm.resource", "fail", "resource A is not B", "set it to B"), width=80)
    assert lines[0].startswith("  FAIL  prm.resource") and "resource A is not B" in lines[0]
    assert lines[-1].strip() == "fix: set it to B"
    assert len(finding_lines(Finding("x", "s", "pass", "ok", "unused fix"))) == 1
