"""Expired sessions, with the manage tokens they hold, are deleted by the worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.utils import timezone

from bookings.worker import Worker

pytestmark = pytest.mark.django_db


def session(expires_in: timedelta) -> str:
    store = SessionStore()
    store["reservo_bookings"] = {"RSV-TEST": "secret-manage-token"}
    store.create()
    Session.objects.filter(session_key=store.session_key).update(
        expire_date=timezone.now() + expires_in
    )
    return str(store.session_key)


def test_the_worker_purges_expired_sessions() -> None:
    expired = [session(timedelta(minutes=-1)) for _ in range(3)]
    live = session(timedelta(days=1))
    worker = Worker(name="test-worker")
    jobs = {what: job for what, job, _every in worker._periodic}

    assert jobs["purge expired sessions"]() == 3

    assert not Session.objects.filter(session_key__in=expired).exists()
    assert Session.objects.filter(session_key=live).exists()


def test_the_command_purges_them_too(capsys: pytest.CaptureFixture[str]) -> None:
    session(timedelta(minutes=-1))
    call_command("purge_sessions")
    assert "1 expired session(s) deleted" in capsys.readouterr().out
