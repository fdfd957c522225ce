"""One time format for every log line, Django's and gunicorn's: ISO 8601 with its offset."""

from __future__ import annotations

import logging
from datetime import UTC, datetime


class IsoFormatter(logging.Formatter):
    """Times in UTC as ISO 8601 with the offset, to the millisecond."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
