"""Django's PostgreSQL backend, tuned (base.py), and what the product's SQL asks of it."""

from typing import Any

# PostgreSQL's `synchronous_commit` off until the transaction ends (set_config's third
# argument): its COMMIT returns without waiting for the write-ahead log to reach the
# disk, which the WAL writer does within three `wal_writer_delay`s (0.6 s by default),
# or sooner, as any later durable commit flushes it too. The log is written in order, so
# a crash loses only a tail of such transactions, never one without those before it.
_RELAXED = "set_config('synchronous_commit', 'off', true)"


def prepared_cursor() -> Any:
    """A cursor of the default connection for a statement every message runs: planned
    once per connection on PostgreSQL (base.DatabaseWrapper.prepared_cursor), Django's
    own cursor elsewhere (SQLite)."""
    from django.db import connection

    prepared = getattr(connection, "prepared_cursor", None)
    return prepared() if prepared is not None else connection.cursor()


def relaxed_commit() -> str:
    """A SQL expression for the select list or RETURNING of a statement that writes
    bookkeeping only, which a crash of the database (or a failover to a standby) may lose
    because the product gets over its loss: a model slot is held until its lease runs
    out, or granted twice for a while; a count is one short. Evaluated, it lets the
    statement's transaction commit without waiting for the disk, about a millisecond
    less for each on a VM's disk (PostgreSQL's manual, "Asynchronous Commit":
    wal-async-commit.html).

    "NULL" (nothing) on SQLite, and inside a transaction a caller opened: one that also
    writes what must last (an answer, its question's outcome) commits as it would have.
    Call it before opening a transaction of one's own; `commit_lasting` takes it back.
    """
    from django.db import connection

    own = connection.vendor == "postgresql" and not connection.in_atomic_block
    return _RELAXED if own else "NULL"


def commit_lasting() -> None:
    """In a transaction that `relaxed_commit` relaxed, wait for the disk at commit after
    all (the configured synchronous_commit, as the session began with it): it came to
    write what must outlast a crash, such as a question's row. One statement on
    PostgreSQL; nothing elsewhere."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO DEFAULT")
