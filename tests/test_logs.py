"""Log lines carry ISO 8601 times with their offset."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from reservo.logs import IsoFormatter


def test_log_times_are_iso_8601_with_an_offset() -> None:
    record = logging.LogRecord("reservo", logging.INFO, __file__, 1, "hello", None, None)
    line = IsoFormatter("%(asctime)s %(levelname)s %(name)s %(message)s").format(record)
    stamp, rest = line.split(" ", 1)
    assert rest == "INFO reservo hello"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", stamp)
    assert (
        datetime.fromisoformat(stamp).timestamp() == round(record.created, 3)
        or abs(datetime.fromisoformat(stamp).timestamp() - record.created) < 0.001
    )
