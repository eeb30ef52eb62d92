"""Every listing command prints a table under a header row, or JSON Lines with `--json`, through
one printer (cli/output.py) that escapes what anyone could have chosen (a DCR client's name)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from authgate.cli.main import main
from authgate.cli.output import Column, print_record, print_rows
from support import requirements as req

LISTINGS = [
    ("users", "list"),
    ("keys", "list"),
    ("clients", "list"),
    ("clients", "prune", "--dry-run", "--idle-minutes", "0"),
    ("grants", "list"),
    ("audit",),
    ("kb", "list"),
]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out = capsys.readouterr().out
    assert code == 0, (argv, out)
    return out


@pytest.mark.requirement(req.ISSUE13_LISTINGS_JSON_AND_HEADERS)
def test_every_listing_has_a_header_row_and_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    _run(capsys, "users", "add", "alice", "--password-stdin", *data)
    _run(capsys, "clients", "add", "backup", "--grant", "client_credentials", "--scopes", "mcp", *data)
    (tmp_path / "docs").mkdir()
    _run(capsys, "kb", "add", "notes", str(tmp_path / "docs"), "--no-index", *data)
    for argv in LISTINGS:
        header, *rows = _run(capsys, *argv, *data).splitlines()
        assert header.split() == [w for w in header.split() if w.isupper() or w == "-"], (argv, header)
        lines = _run(capsys, *argv, "--json", *data).splitlines()
        assert len(lines) == len(rows), (argv, rows, lines)
        assert all(isinstance(json.loads(line), dict) for line in lines), argv
    keys = [json.loads(line) for line in _run(capsys, "keys", "list", "--json", *data).splitlines()]
    assert [k["state"] for k in keys] == ["active", "next"]  # not bare key ids
    assert not any("private" in json.dumps(k) for k in keys)
    (user,) = [json.loads(line) for line in _run(capsys, "users", "list", "--json", *data).splitlines()]
    assert set(user) == {"username", "user_id", "created", "roles"}  # never the password hash


def test_cells_are_escaped_cut_and_aligned(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"name": "evil\x1b]0;pwned\x07", "n": 1}, {"name": "x" * 60, "n": None}]
    print_rows(rows, [Column("name", "NAME", width=20), Column("n", "N")], as_json=False)
    header, first, second = capsys.readouterr().out.splitlines()
    assert header == "NAME                  N"
    assert first == "evil\\x1b]0;pwned\\x07  1" and second == "x" * 19 + "…  -"
    print_rows(rows, [Column("name", "NAME")], as_json=True)
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == rows[0]  # JSON escapes on its own
    print_record({"uris": ["a", "b"], "name": "n"}, [Column("name", "NAME"), Column("uris", "URIS")])
    assert capsys.readouterr().out.splitlines() == ["NAME: n", "URIS: a", "      b"]


def test_revoking_or_showing_what_does_not_exist_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    assert main(["clients", "revoke", "no-such-client", *data]) == 1
    assert main(["clients", "show", "no-such-client\x1b[2J", *data]) == 1
    assert main(["grants", "revoke", "no-such-grant", *data]) == 1
    assert main(["grants", "list", "--user", "nobody", *data]) == 1
    err = capsys.readouterr().err
    assert "no stored client and no grant of 'no-such-client'" in err and "\x1b" not in err
    # a grant id may start with "-" (URL-safe base64): it is the id, not an unknown option
    assert main(["grants", "revoke", "-I-R2OKIu8eY4", *data]) == 1
    assert "no grant '-I-R2OKIu8eY4'" in capsys.readouterr().err
    for argv in (["grants", "revoke"], ["grants", "revoke", "g", "--user", "u"], ["grants", "list", "--limit", "0"]):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, *data])
        assert exit_.value.code == 2  # a usage error: nothing is revoked by omission
