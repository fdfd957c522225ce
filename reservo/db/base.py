"""Django's PostgreSQL backend (psycopg 3), with a health check that costs no round trip.

With CONN_HEALTH_CHECKS, Django checks a reused connection before each request's first
query, so that a database restart costs a reconnect rather than a failed request. Its check
is a `SELECT 1`: one round trip more on every request. A server that ends a connection
(restart, `pg_terminate_backend`, PgBouncer going away) sends its FATAL message and closes
the socket, so the socket turns readable; on an idle connection that does not LISTEN,
nothing else arrives. So an idle connection whose socket has nothing to read is usable as
it is; one that has something to read gets Django's own check.

A connection that breaks after the check fails its request as before (503 Unavailable)
and is replaced at the end of it, as a restart between `SELECT 1` and the query would.
"""

from __future__ import annotations

import select

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is None:
            return False
        pgconn = self.connection.pgconn
        if pgconn.status != pq.ConnStatus.OK:
            return False
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return bool(super().is_usable())
        try:
            poller = select.poll()
            poller.register(pgconn.socket, select.POLLIN)
            readable = bool(poller.poll(0))
        except (OSError, psycopg.Error):
            return False
        return not readable or bool(super().is_usable())
