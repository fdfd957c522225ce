"""Django's PostgreSQL backend (psycopg 3), with fewer round trips.

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

**Statements sent with the next one.** `send_before_next_statement` queues a statement
that the transaction's next statement carries in its query, after the BEGIN if one is due:
the idempotency claim goes with a request's first statement this way. An error in it ends
the query before the next statement runs. What cannot carry it sends it alone first; a
COMMIT with it still queued sends it before, and a rollback drops it.
"""

from __future__ import annotations

import select
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from django.db import connection
from django.db.backends.postgresql import base
from django.db.transaction import TransactionManagementError
from psycopg import pq

# While Django holds a connection's transaction open (autocommit off), the BEGIN it sends
# with the first statement of each transaction. psycopg stays in autocommit mode meanwhile.
_begin_statement: weakref.WeakKeyDictionary[psycopg.Connection[Any], str] = (
    weakref.WeakKeyDictionary()
)


# Statements, bound already, that the next statement on a connection carries in its query
# (after the BEGIN, if one is due): `send_before_next_statement`.
_queued: weakref.WeakKeyDictionary[psycopg.Connection[Any], list[str]] = weakref.WeakKeyDictionary()
# A connection's transaction status after a failed `execute` that sent nothing.
_UNSENT = (pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS)


def _begin_with(connection: psycopg.Connection[Any]) -> str | None:
    """The BEGIN the next statement must carry: none if a transaction is open already."""
    begin = _begin_statement.get(connection) if _begin_statement else None
    if begin is None or connection.pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return None
    return begin


def _open_for_psycopg(connection: psycopg.Connection[Any]) -> None:
    """For what cannot carry them: the BEGIN back to psycopg (it sends one with the next
    query, until Django turns autocommit on again), the queued statements in a query of
    their own."""
    if _begin_with(connection) is not None:
        del _begin_statement[connection]
        connection.autocommit = False
    if queued := _queued.pop(connection, None):
        connection.execute("; ".join(queued))


# Django defines its cursor classes only when psycopg 3 is installed; the stubs cannot say.
_DjangoCursor: Any = base.Cursor  # type: ignore[attr-defined]


class Cursor(_DjangoCursor):
    """Django's client-binding cursor: a statement carries the BEGIN due before it, and the
    statements queued with `send_before_next_statement`, in one query."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Cursor:
        connection = self.connection
        begin = _begin_with(connection)
        if begin is None and not (_queued and connection in _queued):
            return super().execute(query, params, **kwargs)
        if not isinstance(query, str) or connection.pgconn.pipeline_status:
            _open_for_psycopg(connection)
            return super().execute(query, params, **kwargs)
        queued = _queued.pop(connection, [])
        before = [begin, *queued] if begin else queued
        try:
            if params is not None:
                # Bound alone, so that psycopg parses the statement's own text (which it
                # caches), not one that changes with every queued statement.
                query = self.mogrify(query, params)
            super().execute("".join(f"{statement}; " for statement in before) + query, **kwargs)
        except BaseException:
            if connection.pgconn.transaction_status in _UNSENT and queued:
                _queued[connection] = queued  # nothing was sent
            raise
        for _statement in before:
            self.nextset()  # to the statement's own result
        return self

    def executemany(self, query: Any, params_seq: Iterable[Any], **kwargs: Any) -> None:
        _open_for_psycopg(self.connection)
        super().executemany(query, params_seq, **kwargs)

    def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Iterator[Any]:
        _open_for_psycopg(self.connection)
        return super().stream(query, params, **kwargs)

    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Any:
        _open_for_psycopg(self.connection)
        return super().copy(statement, params, **kwargs)


def send_before_next_statement(sql: str, params: Sequence[Any]) -> None:
    """Send `sql` in the same query as the open transaction's next statement, just before
    it: one round trip instead of two. An error in `sql` ends the query there, so the next
    statement does not run, and comes out of that statement's `execute`. If the
    transaction commits first, `sql` goes before the COMMIT; a rollback drops it."""
    if not connection.in_atomic_block:
        raise TransactionManagementError("send_before_next_statement needs a transaction")
    with connection.cursor() as cursor:
        raw = cursor.cursor
        if not isinstance(raw, Cursor):  # another cursor class: no queue, send it now
            cursor.execute(sql, params)
            return
        _queued.setdefault(raw.connection, []).append(raw.mogrify(sql, params))


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
        _queued.pop(connection, None)
        super()._set_autocommit(autocommit)  # type: ignore[misc]

    def create_cursor(self, name: str | None = None) -> Any:
        if name and self.connection is not None:  # a server-side cursor: the transaction open
            _open_for_psycopg(self.connection)
        return super().create_cursor(name)

    def _commit(self) -> None:
        if self.connection is not None and self.connection in _queued:
            _open_for_psycopg(self.connection)
        super()._commit()  # type: ignore[misc]

    def _rollback(self) -> None:
        if self.connection is not None:
            _queued.pop(self.connection, None)
        super()._rollback()  # type: ignore[misc]

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
