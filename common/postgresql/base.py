"""Django's PostgreSQL backend with a health check that costs no round trip, a cursor
whose statements PostgreSQL plans once per connection (`prepared_cursor`), and
timestamps read by psycopg's compiled loader (`UtcLoader`).

Django's check (CONN_HEALTH_CHECKS) sends `SELECT 1` before the first query of every
request and every Celery task, and has a connection pool (the web process's) send an
empty query at every checkout. An idle connection needs no query to tell: a server that
restarts or terminates the session sends its goodbye and closes the socket, so the
socket turns readable, while a healthy idle connection has nothing to read.
"""

import datetime
import select
from functools import lru_cache
from typing import Any, cast

import psycopg
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import get_adapters_template, register_tzloader
from psycopg.adapt import AdaptersMap, Loader
from psycopg.pq import Format
from psycopg_pool import ConnectionPool

_TIMESTAMPTZ = psycopg.adapters.types["timestamptz"].oid
# psycopg's own loader: compiled where psycopg[binary] is installed, as it is here.
_COMPILED = cast(type[Loader], psycopg.adapters.get_loader(_TIMESTAMPTZ, Format.TEXT))


class UtcLoader(Loader):
    """Reads a timestamptz as an aware datetime in UTC, the connection's time zone.

    Django reads each timestamp with a loader of its own (psycopg_any.BaseTzLoader):
    psycopg's pure-Python parser, then `replace(tzinfo=…)`. Reading one through this
    loader, query and fetch included, takes a fifth of the time (bench/timestamps.py:
    1.0 against 5.2 µs). A compiled class cannot be subclassed, so this one hands each
    value to it; it keeps the `timezone` attribute Django compares before a cursor
    (DatabaseWrapper.create_cursor). It gives UTC on a session whose TimeZone is UTC,
    as Django sets at connect when its own is; on another session (a bare psycopg
    connection with these parameters, as the dispatcher's) the same instant, in that
    session's zone.
    """

    timezone = datetime.UTC

    def __init__(self, oid: int, context: Any = None):
        super().__init__(oid, context)
        self._load = _COMPILED(oid, context).load

    def load(self, data: Any) -> datetime.datetime:
        return self._load(data)


@lru_cache
def _adapters_reading_utc() -> AdaptersMap:
    """Django's adapters for a connection in UTC, with `UtcLoader` for timestamps."""
    adapters = AdaptersMap(get_adapters_template(True, datetime.UTC))
    adapters.register_loader("timestamptz", UtcLoader)
    return adapters


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

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        # Django's adapters (its `context`) read timestamps with its Python loader.
        if self.timezone == datetime.UTC:  # None without USE_TZ
            params["context"] = _adapters_reading_utc()
        return params

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
