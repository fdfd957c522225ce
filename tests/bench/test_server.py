"""The benchmark's CPU accounting of the database."""

from __future__ import annotations

import pytest
from django.db import connection

from bench.server import database_cpu_seconds

pytestmark = pytest.mark.django_db


def test_database_cpu_counts_the_work_of_a_backend() -> None:
    before = database_cpu_seconds()
    if before == 0:
        pytest.skip("PostgreSQL runs on another machine: its CPU is not visible here")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM generate_series(1, 3000000)")
    assert database_cpu_seconds() - before >= 0.05
