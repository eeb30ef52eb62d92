"""`authgate kb add/list/reindex/remove/serve`, in-process through `authgate.cli.main.main`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authgate.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_reindex_remove(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    code, out, _ = run(
        capsys,
        "kb",
        "add",
        "company",
        str(corpus / "handbook"),
        str(corpus / "engineering"),
        "--description",
        "company docs",
        *data,
    )
    assert code == 0
    assert "knowledge base company: 5 documents" in out and f"index: {tmp_path / 'data' / 'kb.sqlite3'}" in out
    assert f"folder engineering: {corpus / 'engineering'}" in out and f"folder handbook: {corpus / 'handbook'}" in out
    assert "company: 5 added, 0 updated, 0 removed, 0 unchanged" in out
    assert (tmp_path / "data" / "kb.sqlite3").is_file()

    code, out, _ = run(capsys, "kb", "list", *data)
    header, row = out.splitlines()
    assert header.split()[:4] == ["NAME", "BUILT-IN", "DOCUMENTS", "PASSAGES"]
    assert row.split()[:3] == ["company", "no", "5"] and "company docs" in row
    (company,) = [json.loads(line) for line in run(capsys, "kb", "list", "--json", *data)[1].splitlines()]
    assert str(corpus / "handbook") in [f["path"] for f in company["folders"]]

    (corpus / "handbook" / "new.md").write_text("# New\n\nfresh words\n")
    code, out, _ = run(capsys, "kb", "reindex", "company", *data)
    assert code == 0 and "company: 1 added, 0 updated, 0 removed, 5 unchanged" in out

    code, out, _ = run(capsys, "kb", "remove", "company", *data)
    assert code == 0
    code, out, _ = run(capsys, "kb", "list", *data)
    assert "no knowledge bases" in out


def test_data_dir_comes_from_the_environment(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHGATE_DATA_DIR", str(tmp_path / "env-data"))
    assert run(capsys, "kb", "add", "hb", str(corpus / "handbook"), "--no-index")[0] == 0
    code, out, _ = run(capsys, "kb", "list")
    (kb,) = [json.loads(line) for line in run(capsys, "kb", "list", "--json")[1].splitlines()]
    assert (kb["name"], kb["documents"], kb["indexed"]) == ("hb", 0, None)
    assert (tmp_path / "env-data" / "kb.sqlite3").is_file()


def test_reindex_reports_a_missing_folder(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    run(capsys, "kb", "add", "eng", str(corpus / "engineering"), *data)
    (corpus / "engineering").rename(corpus / "gone")
    code, out, _ = run(capsys, "kb", "reindex", *data)
    assert code == 1 and "missing folders: engineering" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["kb", "add", "bad name", "."], "is not a valid id"),
        (["kb", "add", "x", "/definitely/not/here"], "is not a folder"),
        (["kb", "reindex", "nope"], "unknown knowledge base 'nope'"),
        (["kb", "remove", "nope"], "unknown knowledge base 'nope'"),
    ],
)
def test_mistakes_get_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv, "--data-dir", str(tmp_path / "data"))
    assert code == 1
    assert message in err and "Traceback" not in err


def test_kb_serve_needs_stdio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "kb", "serve", "--data-dir", str(tmp_path))
    assert code == 2 and "--stdio" in err
