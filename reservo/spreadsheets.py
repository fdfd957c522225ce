"""CSV for spreadsheets: cells a spreadsheet never runs as formulas, written as a stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A spreadsheet must not run a customer-typed name as a formula."""
    if isinstance(value, datetime):
        return value.isoformat()  # ISO 8601 with its offset, whatever the pages show
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class Echo:
    """A file for `csv.writer` that hands each line back, for a streaming response."""

    def write(self, value: str) -> str:
        return value
