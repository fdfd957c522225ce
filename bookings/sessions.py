"""Expired sessions are deleted: a browser's session holds the manage tokens of the bookings
it made, for as long as the session lives (SESSION_COOKIE_AGE), and no longer."""

from __future__ import annotations

from django.contrib.sessions.models import Session
from django.db.models.functions import Now


def sessions_purge_expired(*, batch: int = 5000) -> int:
    """Delete the sessions past their expiry (by the database clock), `batch` at a time;
    how many."""
    deleted = 0
    while True:
        keys = list(
            Session.objects.filter(expire_date__lt=Now()).values_list("session_key", flat=True)[
                :batch
            ]
        )
        if not keys:
            return deleted
        count, _ = Session.objects.filter(session_key__in=keys, expire_date__lt=Now()).delete()
        deleted += count
