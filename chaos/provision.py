"""Setup run in a Django process of its own, once the database is migrated: the role's
timeouts, API clients for the workload, the hold duration, and the bounds the checker
derives its limits from.

`python -m chaos.provision --clients N --hold-ttl S --prefix P` prints one JSON object:
{"manage": key, "clients": [key, ...], "bounds": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def gunicorn_timeout() -> int:
    """The request timeout reservo/gunicorn_conf.py gives under this environment."""
    with tempfile.TemporaryDirectory(prefix="reservo-chaos-metrics-") as metrics:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics)
        config = runpy.run_path(str(ROOT / "reservo" / "gunicorn_conf.py"))
    return int(config["timeout"])


def provision(clients: int, hold_ttl_s: int, prefix: str) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reservo.settings")
    django.setup()
    from django.conf import settings
    from django.db import connection

    from bookings.api_keys import api_client_create
    from settings_app.models import SystemSettings

    # Behind PgBouncer no startup options reach PostgreSQL: the app's role gets the
    # statement and idle-in-transaction bounds as its own defaults in this database.
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database()")
        role, database = (connection.ops.quote_name(name) for name in cursor.fetchone())
        for name, value in (
            ("statement_timeout", settings.RESERVO_STATEMENT_TIMEOUT_MS),
            (
                "idle_in_transaction_session_timeout",
                settings.RESERVO_IDLE_IN_TRANSACTION_TIMEOUT_MS,
            ),
        ):
            cursor.execute(f"ALTER ROLE {role} IN DATABASE {database} SET {name} = {int(value)}")
    SystemSettings.objects.update_or_create(id=1, defaults={"hold_ttl_seconds": hold_ttl_s})
    _manager, manage_key = api_client_create(name=f"{prefix}setup", scopes=["book", "manage"])
    keys = []
    for number in range(clients):
        # Every client may cancel every reservation: several cancel one at once.
        _client, key = api_client_create(name=f"{prefix}{number:02d}", scopes=["book", "manage"])
        keys.append(key)
    return {
        "manage": manage_key,
        "clients": keys,
        "bounds": {
            "request_timeout_s": gunicorn_timeout(),
            "lock_timeout_ms": settings.RESERVO_LOCK_TIMEOUT_MS,
            "statement_timeout_ms": settings.RESERVO_STATEMENT_TIMEOUT_MS,
            "idle_in_transaction_timeout_ms": settings.RESERVO_IDLE_IN_TRANSACTION_TIMEOUT_MS,
            "connect_timeout_s": settings.RESERVO_DB_CONNECT_TIMEOUT_S,
            "cache_timeout_ms": settings.RESERVO_CACHE_TIMEOUT_MS,
        },
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.provision", description=__doc__)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--hold-ttl", type=int, required=True)
    parser.add_argument("--prefix", required=True, help="of the API clients' names")
    args = parser.parse_args(argv)
    print(json.dumps(provision(args.clients, args.hold_ttl, args.prefix)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
