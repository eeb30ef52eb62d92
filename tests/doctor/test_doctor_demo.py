"""The README's sample output comes from a real run: scripts/doctor-demo.py starts authgate,
runs the doctor against it and writes what it printed. This runs the script (into a temporary
file, so the test leaves docs/doctor-output.txt alone)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_script_runs_the_doctor_against_authgate_and_writes_its_output(tmp_path: Path) -> None:
    output = tmp_path / "doctor-output.txt"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "doctor-demo.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = output.read_text()
    assert text.startswith("$ authgate doctor http://127.0.0.1:")
    for label in (
        "ChatGPT [chatgpt]",
        "Claude (claude.ai) [claude]",
        "Claude Code [claude-code]",
        "MCP Inspector (browser) [inspector]",
        "MCP Python SDK (mcp 2.3.0) [sdk]",
    ):
        assert label in text
    assert "PASS  mcp.tools_list" in text and "Summary" in text and "exit status" in text
    assert (ROOT / "docs" / "doctor-output.txt").is_file(), "commit the output the README shows"

    readme = (ROOT / "README.md").read_text()
    shown = readme.split("<!-- doctor-output -->", 1)[1].split("<!-- /doctor-output -->", 1)[0]
    shown_lines = [line for line in shown.splitlines() if line.strip() and not line.startswith("```")]
    assert shown_lines, "README lacks the doctor sample between its markers"
    for line in shown_lines:  # what the README shows is what a real run prints today
        assert line in text, f"README line not in a real run's output: {line!r}"
