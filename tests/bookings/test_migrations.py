"""The SQL migrations (trigger, guards, composite key) are reversible."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.conftest import scalar

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

OBJECTS = """
    SELECT (SELECT count(*) FROM pg_trigger WHERE tgname IN
               ('reservo_reservation_counters', 'reservo_resource_counters_guard'))
         + (SELECT count(*) FROM pg_proc WHERE proname IN
               ('reservo_reservation_counters', 'reservo_resource_counters_guard'))
         + (SELECT count(*) FROM pg_constraint WHERE conname = 'reservation_seat_on_own_resource')
"""


def test_counter_trigger_migration_goes_back_and_forth() -> None:
    assert scalar(OBJECTS) == 5
    call_command("migrate", "bookings", "0001", verbosity=0)
    try:
        assert scalar(OBJECTS) == 0
    finally:
        call_command("migrate", verbosity=0)
    assert scalar(OBJECTS) == 5
