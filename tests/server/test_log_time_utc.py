"""Log times say Z, so they are UTC whatever the machine's time zone (the JSON formatter used
the local time under a Z until 2026-12-05; the text formatter already used UTC)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator

import pytest

from authgate.server.logs import JsonFormatter, TextFormatter


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"  # UTC+9, no daylight saving
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("authgate.request", logging.INFO, __file__, 1, "hello", None, None)
    record.created, record.msecs = created, (created % 1) * 1000
    return record


def test_json_and_text_log_times_are_utc_in_any_time_zone(far_from_utc: None) -> None:
    created = 1_796_428_800.25  # 2026-12-05T00:00:00.250Z
    assert time.localtime(created).tm_hour == 9  # the zone is in effect
    assert json.loads(JsonFormatter().format(_record(created)))["time"] == "2026-12-05T00:00:00.250Z"
    assert TextFormatter().format(_record(created)).startswith("2026-12-05 00:00:00,250 ")
