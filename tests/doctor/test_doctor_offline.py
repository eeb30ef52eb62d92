"""Issue 13, the doctor's rough edges: a server that cannot fetch ChatGPT's and Claude's client
ID metadata documents (no internet) fails at `authorize` with a failure that says which host
it could not reach and what to do (`--cimd-host-map` with a stand-in); the page text of a
failure reads as sentences, cut at a word boundary; a URL that is not one is a usage error
before any step runs; the README says its sample used local stand-ins."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from authgate.doctor import findings
from authgate.doctor.findings import Finding
from authgate.doctor.login import page_text
from authgate.doctor.report import finding_lines
from support import requirements as req

from .support import AuthgateServer

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 120

# authgate's own error page for a CIMD document it could not fetch (templates/error.html)
FETCH_FAILED_PAGE = """<!doctype html><html><head><title>Cannot continue · authgate</title>
<style>h1 { font-size: 20px }</style></head><body><main>
<h1>This app cannot sign in</h1>
<p class="error" role="alert">the client&#39;s metadata document could not be fetched</p>
<p class="sub">Go back to the app and connect again; if it keeps failing, tell its developer.</p>
<footer>Protected by authgate</footer></main></body></html>"""


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    """authgate that cannot fetch any CIMD document: its fetch must finish within 1 ms, which
    no fetch from chatgpt.com or claude.ai can (offline, DNS fails at once: the same failure)."""
    server = AuthgateServer(tmp_path_factory.mktemp("doctor-offline"), extra_env={"AUTHGATE_CIMD_TIMEOUT": "0.001"})
    server.add_user()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _doctor(server: AuthgateServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authgate", "doctor", server.mcp_url, *args],
        input=server.password + "\n",
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=server.env,
    )


@pytest.mark.requirement(req.ISSUE13_DOCTOR_OFFLINE_EXPLAINED)
def test_a_server_without_internet_fails_cimd_clients_naming_the_host_and_the_stand_in(
    offline: AuthgateServer,
) -> None:
    done = _doctor(
        offline, "--client", "chatgpt", "--client", "claude", "--user", offline.username, "--password-stdin", "--json"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    for client, host in (("chatgpt", "chatgpt.com"), ("claude", "claude.ai")):
        findings = next(c for c in report["clients"] if c["client"] == client)["findings"]
        authorize = next(f for f in findings if f["step"] == "authorize")
        assert authorize["status"] == "fail", authorize
        # what the server's page said, as sentences (not "This app cannot sign in the client's …")
        assert "This app cannot sign in. The client's metadata document could not be fetched." in authorize["seen"]
        assert "Protected by authgate" not in authorize["seen"]
        # why, and what to do about it
        assert f"the server cannot reach {host}" in authorize["fix"], authorize
        assert f"--cimd-host-map {host}=" in authorize["fix"], authorize


@pytest.mark.requirement(req.ISSUE13_DOCTOR_OFFLINE_EXPLAINED)
def test_a_stand_in_the_server_cannot_fetch_names_the_testing_settings(offline: AuthgateServer) -> None:
    done = _doctor(offline, "--client", "claude-code", "--cimd-host-map", "claude.ai=https://127.0.0.1:9")
    assert done.returncode == 1, done.stdout + done.stderr
    text = " ".join(done.stdout.split())  # the table wraps lines
    assert "FAIL authorize" in text, done.stdout
    assert "could not fetch the stand-in's copy at https://127.0.0.1:9/oauth/claude-code-client-metadata" in text
    assert "AUTHGATE_CIMD_CA_FILE" in text and "AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP=true" in text


@pytest.mark.requirement(req.ISSUE13_DOCTOR_TEXT_READABLE)
def test_page_text_keeps_sentences_apart_and_cuts_at_a_word() -> None:
    assert page_text(FETCH_FAILED_PAGE) == (
        "This app cannot sign in. The client's metadata document could not be fetched. "
        "Go back to the app and connect again; if it keeps failing, tell its developer."
    )
    long = page_text("<p>" + "authorization " * 40 + "</p>", limit=100)
    assert long.endswith(" …") and len(long) <= 102
    assert {word.lower() for word in long.removesuffix(" …").split()} == {"authorization"}  # no word cut
    assert findings.excerpt("short text") == "short text"
    assert findings.excerpt("x" * 300, 50) == "x" * 50 + " …"  # one word longer than the limit: cut, and said so


@pytest.mark.requirement(req.ISSUE13_DOCTOR_TEXT_READABLE)
def test_the_table_never_breaks_a_flag_or_url_across_lines() -> None:
    fix = "test with a local stand-in: --cimd-host-map claude.ai=https://127.0.0.1:PORT (docs/doctor.md)"
    for width in range(60, 121, 7):
        lines = finding_lines(Finding("claude", "authorize", "fail", "GET /authorize → 400", fix), width=width)
        joined = " ".join(" ".join(lines).split())
        assert "--cimd-host-map claude.ai=https://127.0.0.1:PORT" in joined, lines


@pytest.mark.requirement(req.ISSUE13_DOCTOR_URL_USAGE_ERROR)
@pytest.mark.parametrize("url", ["not-a-url", "ftp://example.com/mcp", "https://", "http://host:port/mcp"])
def test_a_url_that_is_not_one_is_a_usage_error_before_any_step(url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "authgate", "doctor", url], capture_output=True, text=True, timeout=CLI_TIMEOUT
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""  # no step ran
    assert "usage: authgate doctor" in done.stderr and url in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.requirement(req.ISSUE13_DOCTOR_OFFLINE_EXPLAINED)
def test_the_readme_says_its_sample_used_stand_ins() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Check any deployment: `authgate doctor`", 1)[1].split("\n## ", 1)[0]
    assert "--cimd-host-map" in section and "stand-in" in section
    assert "without internet" in section
