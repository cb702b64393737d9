"""Django's PostgreSQL backend, tuned (base.py), and what the product's SQL asks of it."""

from typing import Any


def prepared_cursor() -> Any:
    """A cursor of the default connection for a statement every message runs: planned
    once per connection on PostgreSQL (base.DatabaseWrapper.prepared_cursor), Django's
    own cursor elsewhere (SQLite)."""
    from django.db import connection

    prepared = getattr(connection, "prepared_cursor", None)
    return prepared() if prepared is not None else connection.cursor()
