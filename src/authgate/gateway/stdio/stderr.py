"""A child's stderr in the log, bounded (MCP stdio transport: stderr is the server's logging).

One child must not fill the shared log: each line is cut to LINE_BYTES, and a token bucket
lets through at most BURST lines at once and LINES_PER_SECOND on average per child. What the
bucket refuses is counted, and one WARNING says how much was dropped (at most every
SUMMARY_EVERY seconds, and when the child's stderr closes). The pipe is always read to the
end whatever is dropped, so a child writing without pause never blocks on a full pipe: a
dropped line costs a count, never a wait. Blank lines are not logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["BURST", "LINES_PER_SECOND", "LINE_BYTES", "READ_SIZE", "SUMMARY_EVERY", "StderrLog"]

logger = logging.getLogger("authgate.stdio")

LINE_BYTES = 2048  # a longer line is logged cut, with how many bytes were left out
LINES_PER_SECOND = 20.0
BURST = 100
SUMMARY_EVERY = 10.0
READ_SIZE = 64 * 1024


class StderrLog:
    """Feed it what the child writes on stderr; it logs what the budget allows."""

    def __init__(
        self,
        label: str,
        *,
        rate: float = LINES_PER_SECOND,
        burst: int = BURST,
        line_bytes: int = LINE_BYTES,
        summary_every: float = SUMMARY_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.rate, self.burst, self.line_bytes, self.summary_every = rate, burst, line_bytes, summary_every
        self.clock = clock
        self.tokens = float(burst)
        self.refilled = self.last_summary = clock()
        self.partial = bytearray()  # the start of the line being read, at most line_bytes
        self.partial_cut = 0  # bytes of that line beyond line_bytes
        self.logged_lines = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0

    def feed(self, chunk: bytes) -> None:
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            if end < 0:
                self._extend(chunk, start, len(chunk))
                break
            self._extend(chunk, start, end)
            self._line_done()
            start = end + 1
            if self._bucket_empty():  # drop the chunk's other whole lines without looking at them
                last = chunk.rfind(b"\n", start)
                if last >= start:
                    self.dropped_lines += chunk.count(b"\n", start, last + 1)
                    self.dropped_bytes += last + 1 - start
                    start = last + 1
        if self.clock() - self.last_summary >= self.summary_every:
            self.summarize()

    def close(self) -> None:
        """The child's stderr ended: its last line (without a newline), then what was dropped."""
        if self.partial or self.partial_cut:
            self._line_done()
        self.summarize()

    def quiet_for(self) -> float | None:
        """How long the reader may wait for more before a pending summary is due (None: no limit)."""
        if not self.dropped_lines:
            return None
        return max(0.0, self.last_summary + self.summary_every - self.clock())

    def summarize(self) -> None:
        now = self.clock()
        if self.dropped_lines:
            logger.warning(
                "%s stderr: %d line(s), %d bytes dropped in %.0f s (more than %g lines/s)",
                self.label,
                self.dropped_lines,
                self.dropped_bytes,
                now - self.last_summary,
                self.rate,
            )
            self.dropped_lines = self.dropped_bytes = 0
        self.last_summary = now

    def _extend(self, chunk: bytes, start: int, end: int) -> None:
        room = self.line_bytes - len(self.partial)
        if room > 0:
            self.partial += chunk[start : min(end, start + room)]
        self.partial_cut += max(0, end - start - max(room, 0))

    def _line_done(self) -> None:
        head, cut = bytes(self.partial), self.partial_cut
        self.partial.clear()
        self.partial_cut = 0
        text = head.decode(errors="replace").rstrip()
        if not text and not cut:
            return
        if self._bucket_empty():
            self.dropped_lines += 1
            self.dropped_bytes += len(head) + cut + 1
            return
        self.tokens -= 1
        self.logged_lines += 1
        if cut:
            logger.info("%s stderr: %s … [%d more bytes of this line not logged]", self.label, text, cut)
        else:
            logger.info("%s stderr: %s", self.label, text)

    def _bucket_empty(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        return self.tokens < 1.0
