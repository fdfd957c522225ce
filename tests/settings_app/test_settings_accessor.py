"""The cached settings accessor: shared cache, write-through after commit, PostgreSQL fallback."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import override_settings

from reservo.errors import ValidationFailed
from settings_app import selectors
from settings_app.models import SystemSettings
from settings_app.selectors import CACHE_KEY, CACHE_SECONDS, system_settings
from settings_app.services import system_settings_update

pytestmark = pytest.mark.django_db

DEAD_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "unix:///nonexistent/reservo-dead-redis.sock?db=0",
        "KEY_PREFIX": "t_dead",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 0.2,
            "SOCKET_TIMEOUT": 0.2,
            "IGNORE_EXCEPTIONS": True,
        },
    }
}


def later_than_this_process_remembers(monkeypatch: pytest.MonkeyPatch) -> None:
    later = time.monotonic() + selectors.PROCESS_SECONDS + 0.01
    monkeypatch.setattr(selectors.time, "monotonic", lambda: later)


def test_a_change_reaches_every_process_within_a_second() -> None:
    # The shared entry lives CACHE_SECONDS; a process's copy of it PROCESS_SECONDS more.
    assert CACHE_SECONDS + selectors.PROCESS_SECONDS <= 1
    system_settings()
    ttl_ms = cache.pttl(CACHE_KEY)  # type: ignore[attr-defined]
    assert ttl_ms is not None and 0 < ttl_ms <= CACHE_SECONDS * 1000


def test_a_process_reads_the_shared_cache_at_most_every_half_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert system_settings().maintenance_mode is False
    # Another instance switched maintenance on and wrote it through.
    cache.set(CACHE_KEY, {**cache.get(CACHE_KEY), "maintenance_mode": True}, timeout=1)
    assert system_settings().maintenance_mode is False
    later_than_this_process_remembers(monkeypatch)
    assert system_settings().maintenance_mode is True


def test_a_change_made_in_this_process_is_seen_here_at_once(
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert system_settings().maintenance_mode is False
    with django_capture_on_commit_callbacks(execute=True):
        system_settings_update(maintenance_mode=True)
    assert system_settings().maintenance_mode is True


def test_reads_database_on_miss_and_fills_the_shared_cache() -> None:
    SystemSettings.objects.update(maintenance_mode=True, maintenance_message="Back at noon")
    assert cache.get(CACHE_KEY) is None

    current = system_settings()

    assert current.maintenance_mode is True
    assert current.maintenance_message == "Back at noon"
    assert cache.get(CACHE_KEY)["maintenance_mode"] is True


def test_reads_the_shared_cache_without_a_query(django_assert_num_queries: Any) -> None:
    system_settings()
    with django_assert_num_queries(0):
        assert system_settings().maintenance_mode is False


def test_update_writes_through_only_after_commit() -> None:
    system_settings()  # cached: off
    with transaction.atomic():
        system_settings_update(maintenance_mode=True, maintenance_message="Sale day prep")
        # Not committed yet: nobody may see it, and the cache must still say off.
        assert cache.get(CACHE_KEY)["maintenance_mode"] is False
    # The test's outer transaction is still open: pytest-django runs on_commit hooks
    # only with django_capture_on_commit_callbacks, which the next test uses.


def test_update_is_visible_through_the_cache_after_commit(
    django_capture_on_commit_callbacks: Any, django_assert_num_queries: Any
) -> None:
    system_settings()
    with django_capture_on_commit_callbacks(execute=True):
        system_settings_update(maintenance_mode=True, maintenance_message="Sale day prep")
    with django_assert_num_queries(0):
        current = system_settings()
    assert current.maintenance_mode is True
    assert current.maintenance_message == "Sale day prep"


def test_rolled_back_update_never_reaches_the_cache(
    django_capture_on_commit_callbacks: Any,
) -> None:
    system_settings()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                system_settings_update(maintenance_mode=True)
                raise RuntimeError("abort")
        except RuntimeError:
            pass
    assert callbacks == []
    assert system_settings().maintenance_mode is False
    assert SystemSettings.objects.get().maintenance_mode is False


def test_redis_unreachable_reads_postgresql_never_a_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    SystemSettings.objects.update(maintenance_mode=True, hold_ttl_seconds=120)
    with override_settings(CACHES=DEAD_REDIS):
        assert cache.get(CACHE_KEY) is None  # the broken cache reports a miss
        current = system_settings()
        assert current.maintenance_mode is True
        assert current.hold_ttl_seconds == 120
        SystemSettings.objects.update(maintenance_mode=False)
        later_than_this_process_remembers(monkeypatch)
        assert system_settings().maintenance_mode is False


def test_update_with_redis_unreachable_still_saves(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with override_settings(CACHES=DEAD_REDIS):
        with django_capture_on_commit_callbacks(execute=True):
            system_settings_update(maintenance_mode=True)
        assert system_settings().maintenance_mode is True
    assert SystemSettings.objects.get().maintenance_mode is True


def test_entry_from_another_code_version_is_ignored() -> None:
    cache.set(CACHE_KEY, {"unexpected": 1}, timeout=1)
    SystemSettings.objects.update(maintenance_mode=True)
    assert system_settings().maintenance_mode is True


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hold_ttl_seconds": 5}, "hold_ttl_seconds"),
        ({"hold_ttl_seconds": 86401}, "hold_ttl_seconds"),
        ({"default_max_per_booking": 0}, "default_max_per_booking"),
        ({"maintenance_until": "tomorrow"}, "maintenance_until"),
        ({"id": 2}, "id"),
    ],
)
def test_update_refuses_invalid_values(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        system_settings_update(**changes)
    assert field in refused.value.errors
    assert SystemSettings.objects.get().hold_ttl_seconds == 600


def test_update_records_the_database_time() -> None:
    before = SystemSettings.objects.get().updated_at
    row = system_settings_update(hold_ttl_seconds=300)
    assert row.hold_ttl_seconds == 300
    assert row.updated_at >= before
