"""The history: every invocation and completion a client saw, and every fault, as JSONL.

One line per event, in the order they happened:

    {"type": "invoke", "id": 7, "op": "book", "client": 3, "key": "c03-000012",
     "attempt": 1, "instance": "a", "method": "POST", "path": "/api/v1/reservations/",
     "request": {...}, "time": 1733341200.125}
    {"type": "ok", "id": 7, ..., "start": ..., "time": ..., "status": 201, "response": {...}}
    {"type": "fail", "id": 8, ..., "status": 409, "code": "sold_out", "response": {...}}
    {"type": "unknown", "id": 9, ..., "error": "timeout"}
    {"type": "nemesis", "kind": "db_blackhole", "phase": "start", "time": ..., "detail": "..."}

Times are seconds since the epoch, on this machine's clock, which is also the database's.
`ok` is a 2xx answer, `fail` any other answer (with its problem code), `unknown` no answer
(a timeout, a refused or broken connection): the request may or may not have taken effect.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO


class History:
    """Appends events to a JSONL file; safe to call from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = open(path, "w")  # noqa: SIM115 (closed by close())
        self._lock = threading.Lock()
        self._next_id = 0

    def _write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")

    def invoke(self, **fields: Any) -> tuple[int, float]:
        """Record an invocation; returns its id and start time."""
        with self._lock:
            self._next_id += 1
            invocation = self._next_id
        start = time.time()
        self._write({"type": "invoke", "id": invocation, **fields, "time": start})
        return invocation, start

    def complete(self, invocation: int, start: float, outcome: str, **fields: Any) -> float:
        end = time.time()
        self._write({"type": outcome, "id": invocation, **fields, "start": start, "time": end})
        return end

    def nemesis(self, kind: str, phase: str, **fields: Any) -> None:
        self._write(
            {"type": "nemesis", "kind": kind, "phase": phase, **fields, "time": time.time()}
        )

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read(path: Path) -> Iterator[dict[str, Any]]:
    with open(path) as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)
