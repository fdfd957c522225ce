"""Dates and durations as Reservo writes them: "Wed 9 Dec 2026, 19:00-21:00 CET" (an en dash) in the site's time zone,
the end's date left out when it is the same day."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import ngettext

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


@register.filter
def duration(seconds: int) -> str:
    """A duration as configured: "20 seconds", "1 minute", "1 hour 30 minutes"."""
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours})
    if minutes:
        parts.append(ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes})
    if rest or not parts:
        parts.append(ngettext("%(n)d second", "%(n)d seconds", rest) % {"n": rest})
    return " ".join(parts)
