"""Limits counted in the shared Redis, so that every instance sees the same counts:
events per subject (an address, a recipient, a username) in fixed windows.

Keys are made by the cache (`make_key`), under its prefix like every other entry. When
Redis does not answer, a limit is not applied and a warning is logged (and counted as a
cache error on /metrics): the site keeps selling while Redis is down.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

# The wall clock that windows are cut from.
clock = time.time

_PERIOD = re.compile(r"^\s*([0-9]*)\s*([a-z]+)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    """At most `limit` events per `period` seconds."""

    limit: int
    period: int


@functools.lru_cache(maxsize=64)
def parse_rate(text: str) -> Rate | None:
    """The rate `text` stands for: "<count>/<period>", the period a unit (s, min, h, day)
    optionally preceded by a number ("10/10min"). An empty rate is no limit."""
    if not text.strip():
        return None
    count, _slash, period = text.partition("/")
    match = _PERIOD.match(period.lower())
    if not count.strip().isdigit() or match is None or match.group(2)[0] not in _UNIT_SECONDS:
        raise ValueError(f"A rate is '<count>/<period>', such as '600/min' or '10/10min': {text!r}")
    multiplier = int(match.group(1) or 1)
    return Rate(int(count), multiplier * _UNIT_SECONDS[match.group(2)[0]])


def redis() -> Any:
    """The shared cache's Redis client."""
    return cache.client.get_client(write=True)  # type: ignore[attr-defined]


def key(*parts: str | int) -> str:
    """A Redis key for `parts`, under the cache prefix."""
    return str(cache.make_key(":".join(str(part) for part in parts)))


def digest(text: str) -> str:
    """A subject that should not sit in Redis as it is (an email address, a username)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def not_applied(what: str) -> None:
    """Log that the limit `what` was skipped because Redis did not answer."""
    logging.getLogger(settings.DJANGO_REDIS_LOGGER).warning(
        "%s limit not applied: the cache did not answer", what, exc_info=True
    )


def window_hit(
    name: str, subject: str, rate: Rate | None, *, now: float | None = None
) -> int | None:
    """Count one event `name` of `subject`. None while the window's count is within the
    rate (or there is no rate, or Redis did not answer); else the seconds until the window
    ends, for Retry-After.

    One round trip: the window's counter is created with its expiry (`SET NX`) and
    incremented (`INCR`) in one pipeline.
    """
    if rate is None:
        return None
    now = clock() if now is None else now
    window = int(now // rate.period)
    counter = key("limit", name, subject, window)
    try:
        pipeline = redis().pipeline(transaction=False)
        pipeline.set(counter, 0, ex=rate.period + 1, nx=True)
        pipeline.incr(counter)
        _created, count = pipeline.execute()
    except Exception:  # Redis is down or refused the command: fail open
        not_applied(name)
        return None
    if int(count) <= rate.limit:
        return None
    return seconds_left(rate, now)


def seconds_left(rate: Rate, now: float) -> int:
    """Whole seconds until the current window of `rate` ends (at least 1)."""
    return max(1, math.ceil(rate.period - (now % rate.period)))
