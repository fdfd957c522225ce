"""One time format for every log line, Django's and gunicorn's: ISO 8601 with its offset.

Django's LOGGING (reservo/settings.py) and gunicorn's logger (reservo/gunicorn_conf.py) both
format with `FORMATTER`: the time, the level, the logger's name, the message."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class IsoFormatter(logging.Formatter):
    """Times in UTC as ISO 8601 with the offset, to the millisecond."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")


# The one formatter, as logging's dictConfig takes it.
FORMATTER = {"()": "reservo.logs.IsoFormatter", "format": LINE_FORMAT}
