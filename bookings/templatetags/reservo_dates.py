"""Dates as Reservo writes them: "Wed 9 Dec 2026, 19:00-21:00 CET" (an en dash) in the site's time zone,
the end's date left out when it is the same day."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.formats import date_format
from django.utils.timezone import localtime

register = template.Library()
EN_DASH = "\N{EN DASH}"


@register.simple_tag
def when(starts_at: datetime | None, ends_at: datetime | None = None) -> str:
    """A moment, or a span from `starts_at` to `ends_at`; "" without a start."""
    if starts_at is None:
        return ""
    start = localtime(starts_at)
    text = f"{date_format(start, 'DATE_FORMAT')}, {date_format(start, 'TIME_FORMAT')}"
    if ends_at is not None:
        end = localtime(ends_at)
        if end.date() == start.date():
            text += EN_DASH + date_format(end, "TIME_FORMAT")
        else:
            text += (
                f" {EN_DASH} {date_format(end, 'DATE_FORMAT')}, {date_format(end, 'TIME_FORMAT')}"
            )
        zone = end.strftime("%Z")
    else:
        zone = start.strftime("%Z")
    return f"{text} {zone}"
