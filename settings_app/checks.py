"""Deployment checks (`manage.py check --deploy`) on Reservo's own settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning


@register(Tags.security, deploy=True)
def bench_views_not_routed(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """The benchmark's views book without an API key, throttle or idempotency."""
    if not settings.RESERVO_BENCH_FLOOR:
        return []
    return [
        CheckWarning(
            "RESERVO_BENCH_FLOOR is on: the benchmark's floor and reference booking views are "
            "routed, and the reference views book without an API key.",
            hint="Unset RESERVO_BENCH_FLOOR; only `make bench` sets it, on its own server.",
            id="reservo.W001",
        )
    ]
