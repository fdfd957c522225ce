"""Django's PostgreSQL backend (psycopg 3), with two round trips fewer.

**A health check that costs no round trip.** With CONN_HEALTH_CHECKS, Django checks a
reused connection before each request's first query, so that a database restart costs a
reconnect rather than a failed request. Its check is a `SELECT 1`: one round trip more on
every request. A server that ends a connection (restart, `pg_terminate_backend`, PgBouncer
going away) sends its FATAL message and closes the socket, so the socket turns readable; on
an idle connection that does not LISTEN, nothing else arrives. So an idle connection whose
socket has nothing to read is usable as it is; one that has something to read gets Django's
own check. A connection that breaks after the check fails its request as before (503
Unavailable) and is replaced at the end of it, as a restart between `SELECT 1` and the query
would.

**A transaction's BEGIN travels with its first statement.** With autocommit off, psycopg
sends `BEGIN`, and waits for the answer, before the first statement of each transaction:
one round trip of the four in an idempotent API booking, and of the two in a booking from
the pages. Here, while Django has autocommit off, the connection stays in psycopg's
autocommit mode, and a statement sent through a client-binding cursor (every Django query)
when no transaction is open goes as `BEGIN ...; statement`, one simple query; the cursor
shows the statement's result. That is psycopg's own rule, with the BEGIN in the same
message. Whatever else needs the transaction open first (a server-side cursor,
`executemany`, `COPY`, `stream`, a pipeline, a composed query) hands the BEGIN back to
psycopg: the connection leaves autocommit mode until Django turns autocommit on again.
psycopg's commit and rollback act on the server's transaction status, so they end the
transaction either way.
"""

from __future__ import annotations

import select
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq

# While Django holds a connection's transaction open (autocommit off), the BEGIN it sends
# with the first statement of each transaction. psycopg stays in autocommit mode meanwhile.
_begin_statement: weakref.WeakKeyDictionary[psycopg.Connection[Any], str] = (
    weakref.WeakKeyDictionary()
)


def _begin_with(connection: psycopg.Connection[Any]) -> str | None:
    """The BEGIN the next statement must carry: none if a transaction is open already."""
    begin = _begin_statement.get(connection) if _begin_statement else None
    if begin is None or connection.pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return None
    return begin


def _begin_by_psycopg(connection: psycopg.Connection[Any]) -> None:
    """Leave the BEGIN to psycopg from now on (it sends one with the next query)."""
    if _begin_with(connection) is not None:
        del _begin_statement[connection]
        connection.autocommit = False


# Django defines its cursor classes only when psycopg 3 is installed; the stubs cannot say.
_DjangoCursor: Any = base.Cursor  # type: ignore[attr-defined]


class Cursor(_DjangoCursor):
    """Django's client-binding cursor; the first statement of a transaction carries its BEGIN."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Cursor:
        connection = self.connection
        begin = _begin_with(connection)
        if begin is None:
            return super().execute(query, params, **kwargs)
        if not isinstance(query, str) or connection.pgconn.pipeline_status:
            _begin_by_psycopg(connection)
            return super().execute(query, params, **kwargs)
        super().execute(f"{begin}; {query}", params, **kwargs)
        self.nextset()  # the statement's result, not the BEGIN's
        return self

    def executemany(self, query: Any, params_seq: Iterable[Any], **kwargs: Any) -> None:
        _begin_by_psycopg(self.connection)
        super().executemany(query, params_seq, **kwargs)

    def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Iterator[Any]:
        _begin_by_psycopg(self.connection)
        return super().stream(query, params, **kwargs)

    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Any:
        _begin_by_psycopg(self.connection)
        return super().copy(statement, params, **kwargs)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        if params["cursor_factory"] is base.Cursor:
            params["cursor_factory"] = Cursor
        return params

    def _set_autocommit(self, autocommit: bool) -> None:
        connection = self.connection
        if (
            not autocommit
            and connection.autocommit
            and connection.cursor_factory is Cursor
            and connection.read_only is None
            and connection.deferrable is None
            and connection.pgconn.transaction_status == pq.TransactionStatus.IDLE
        ):
            level = connection.isolation_level
            _begin_statement[connection] = (
                "BEGIN"
                if level is None
                else f"BEGIN ISOLATION LEVEL {level.name.replace('_', ' ')}"
            )
            return
        _begin_statement.pop(connection, None)
        super()._set_autocommit(autocommit)  # type: ignore[misc]

    def create_cursor(self, name: str | None = None) -> Any:
        if name and self.connection is not None:
            _begin_by_psycopg(self.connection)  # a server-side cursor needs the transaction open
        return super().create_cursor(name)

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
