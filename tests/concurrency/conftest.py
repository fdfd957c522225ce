"""Fixtures for race tests: real threads, real PostgreSQL, both isolation levels."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connections, transaction

from tests.conftest import scalar


@pytest.fixture(params=["read_committed", "serializable"])
def isolation_level(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test under each isolation level; every new connection gets it."""
    options = connections.settings["default"]["OPTIONS"]
    before = options["isolation_level"]
    options["isolation_level"] = settings.ISOLATION_LEVELS[request.param]
    connections.close_all()
    try:
        with transaction.atomic():
            assert scalar("SHOW transaction_isolation") == request.param.replace("_", " ")
        yield request.param
    finally:
        options["isolation_level"] = before
        connections.close_all()
