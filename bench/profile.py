"""Where the workers spend their time: py-spy's raw (collapsed) stacks, summarised."""

from __future__ import annotations

import re
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
