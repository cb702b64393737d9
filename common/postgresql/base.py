"""Django's PostgreSQL backend with a health check that costs no round trip, and a cursor
whose statements PostgreSQL plans once per connection (`prepared_cursor`).

Django's check (CONN_HEALTH_CHECKS) sends `SELECT 1` before the first query of every
request and every Celery task, and has a connection pool (the web process's) send an
empty query at every checkout. An idle connection needs no query to tell: a server that
restarts or terminates the session sends its goodbye and closes the socket, so the
socket turns readable, while a healthy idle connection has nothing to read.
"""

import select
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format
from psycopg_pool import ConnectionPool

_TIMESTAMPTZ = psycopg.adapters.types["timestamptz"].oid


def idle_and_open(conn: psycopg.Connection) -> bool:
    """Whether an idle connection is still open at both ends, read off its socket."""
    if conn.broken or conn.closed:
        return False
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return not poller.poll(0)


def check_pooled(conn: psycopg.Connection) -> None:
    """psycopg_pool's `check` callback: raises OperationalError for a connection the
    server dropped while it sat in the pool, closed first so that the pool throws it
    away and opens another."""
    if not idle_and_open(conn):
        conn.close()
        raise psycopg.OperationalError("the server closed this pooled connection")


class DatabaseWrapper(base.DatabaseWrapper):
    # Set by Django's BaseDatabaseWrapper; django-stubs does not declare them.
    health_check_enabled: bool
    health_check_done: bool

    def prepared_cursor(self) -> Any:
        """A cursor whose statements PostgreSQL can plan once per connection: the values
        go apart from the text (server-side binding), and psycopg prepares a statement
        the fifth time the connection runs it (its prepare_threshold, which settings.py
        sets unless DATABASE_PREPARED_STATEMENTS is off, by default where IM_DISPATCH is
        "publish": Django leaves it off, for proxies that pool connections by
        transaction). For the statements of every message whose planning costs more than
        their run: the admission line's read took
        0.73 ms planned each time, 0.16 ms prepared. Each value must have a type
        PostgreSQL can tell (a number, a timestamp, or a cast in the text). Made as
        Django makes its own (BaseDatabaseWrapper._cursor, create_cursor)."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            cursor = psycopg.Cursor(self.connection)
            loader = self.connection.adapters.get_loader(_TIMESTAMPTZ, Format.TEXT)
            if self.timezone != loader.timezone:
                register_tzloader(self.timezone, cursor)
            return self._prepare_cursor(cursor)  # type: ignore[attr-defined]

    def close_if_health_check_failed(self) -> None:
        due = self.connection is not None and self.health_check_enabled
        if not due or self.health_check_done or self.pool:  # a pool checks its own
            return
        if not idle_and_open(self.connection):
            self.close()
        self.health_check_done = True

    @property
    def pool(self) -> Any:
        pool = super().pool
        # Django gives the pool psycopg_pool's own check, an empty query: a round trip
        # for every request.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = check_pooled
        return pool
