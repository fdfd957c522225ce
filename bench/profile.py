"""Where the workers spend their time: py-spy's raw (collapsed) stacks, summarised."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")
AREAS = (
    ("bookings/", "reservo: bookings"),
    ("resources/", "reservo: resources"),
    ("settings_app/", "reservo: settings_app"),
    ("reservo/", "reservo: project"),
    ("rest_framework/", "djangorestframework"),
    ("django/db/", "django ORM"),
    ("django/", "django (other)"),
    ("psycopg", "psycopg"),
    ("django_redis/", "redis client"),
    ("redis/", "redis client"),
    ("gunicorn/", "gunicorn"),
    ("json/", "json"),
    ("logging/", "logging"),
)


def _area(file: str) -> str:
    for marker, area in AREAS:
        if marker in file:
            return area
    return "python/other"


def parse_collapsed(lines: Iterable[str]) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in lines:
        line = line.rstrip()
        if not line or " " not in line:
            continue
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def summarize_profiles(files: Iterable[Path], top: int = 30) -> str:
    stacks: Counter[tuple[str, ...]] = Counter()
    for path in files:
        stacks.update(parse_collapsed(path.read_text(errors="replace").splitlines()))
    total = sum(stacks.values())
    if not total:
        return "no samples\n"
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    for stack, count in stacks.items():
        for frame in set(stack):
            inclusive[frame] += count
        leaf[stack[-1]] += count
        match = FRAME.match(stack[-1])
        areas[_area(match.group("file") if match else stack[-1])] += count

    def table(title: str, counter: Counter[str]) -> list[str]:
        rows = [f"{title}", "-" * len(title)]
        rows += [f"{100 * n / total:6.1f}%  {name}" for name, n in counter.most_common(top)]
        return [*rows, ""]

    lines = [f"{total} samples (all workers, idle included)", ""]
    lines += table("Self time by area", areas)
    lines += table("Inclusive time by frame", inclusive)
    lines += table("Self time by frame", leaf)
    return "\n".join(lines)


class DatabaseWaits:
    """What the benchmark database's client sessions are doing, sampled from pg_stat_activity.

    "idle in transaction" is a transaction left open while the app works in Python (with
    its row locks held); "Lock: transactionid/tuple" is a wait for another transaction's row
    lock; "IO: WalSync" is a commit waiting for its WAL flush.
    """

    def __init__(self, database_url: str, interval_s: float = 0.02) -> None:
        self.database_url = database_url
        self.interval_s = interval_s
        self.states: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-waits", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self._stop.wait(self.interval_s):
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = current_database() AND backend_type = 'client backend'"
                    " AND pid <> pg_backend_pid()"
                ).fetchall()
                self.samples += 1
                for state, wait_type, wait_event in rows:
                    label = state or "?"
                    if wait_type and not (state == "idle" and wait_event == "ClientRead"):
                        label += f" / {wait_type}: {wait_event}"
                    self.states[label] += 1

    def summary(self) -> str:
        if not self.samples:
            return "no database samples\n"
        lines = [
            f"Database sessions (pg_stat_activity, {self.samples} samples): average sessions in",
            "each state at any instant",
            "-" * 60,
        ]
        lines += [
            f"{count / self.samples:6.2f}  {label}" for label, count in self.states.most_common(20)
        ]
        return "\n".join(lines) + "\n"
