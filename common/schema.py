"""Schema changes our migrations make by hand, where Django's own would cost too much."""

from __future__ import annotations

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def drop_index(table: str, column: str, name: str) -> migrations.RunPython:
    """The database side of a foreign key losing its own index (`db_index=False`), for
    a migration's SeparateDatabaseAndState; reversible.

    Django's AlterField would drop every index on the column alone, a partial unique
    constraint's included, and rebuild the foreign key, checking every row again under an
    exclusive lock on both tables (SQLite: copying the table). This drops the one index
    named; on PostgreSQL without blocking writes (CONCURRENTLY, so the migration must set
    `atomic = False`).
    """

    def running(sql: str):  # noqa: ANN202 - a RunPython function
        def run(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
            postgresql = schema_editor.connection.vendor == "postgresql"
            schema_editor.execute(sql.format(concurrently="CONCURRENTLY " if postgresql else ""))

        return run

    drop = f"DROP INDEX {{concurrently}}IF EXISTS {name}"
    create = f"CREATE INDEX {{concurrently}}IF NOT EXISTS {name} ON {table} ({column})"
    return migrations.RunPython(running(drop), running(create))
