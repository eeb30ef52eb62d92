"""What of a child's stderr reaches the log (gateway/stdio/stderr.py), on a clock the test
turns: lines cut to LINE_BYTES, a token bucket per child, and one summary of what was
dropped. A real child flooding 50 MB is tests/integration/test_stdio_faults.py."""

from __future__ import annotations

import logging

import pytest

from authgate.gateway.stdio.stderr import BURST, LINE_BYTES, StderrLog
from support import requirements as req


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "authgate.stdio" and r.levelno == level]


@pytest.mark.requirement(req.ISSUE19_STDERR_BOUNDED)
def test_a_burst_then_the_rate_then_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="authgate.stdio")
    clock = Clock()
    sink = StderrLog("stdio#1", rate=20, clock=clock)
    sink.feed(b"".join(b"line %d\n" % i for i in range(1000)))
    assert len(_lines(caplog)) == BURST and _lines(caplog)[0] == "stdio#1 stderr: line 0"
    assert sink.quiet_for() == 10.0  # the reader wakes for the summary even if the child goes quiet
    clock.now += 1.0
    sink.feed(b"".join(b"more %d\n" % i for i in range(100)))
    assert len(_lines(caplog)) == BURST + 20
    assert not _lines(caplog, logging.WARNING)
    clock.now += 9.0
    sink.feed(b"\n\n")  # blank lines are not logged
    warnings = _lines(caplog, logging.WARNING)
    assert warnings == ["stdio#1 stderr: 980 line(s), 8740 bytes dropped in 10 s (more than 20 lines/s)"]
    assert sink.quiet_for() is None
    sink.close()
    assert len(_lines(caplog, logging.WARNING)) == 1, "nothing more was dropped"


def test_a_long_line_is_cut_wherever_the_chunks_split_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="authgate.stdio")
    sink = StderrLog("stdio#2", clock=Clock())
    line = b"y" * (LINE_BYTES * 3)
    for start in range(0, len(line), 1000):
        sink.feed(line[start : start + 1000])
    sink.feed(b"\nnext\ntail without newline")
    sink.close()
    logged = _lines(caplog)
    assert logged[0] == f"stdio#2 stderr: {'y' * LINE_BYTES} … [{LINE_BYTES * 2} more bytes of this line not logged]"
    assert logged[1:] == ["stdio#2 stderr: next", "stdio#2 stderr: tail without newline"]
