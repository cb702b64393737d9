from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexWithoutBlockingWrites(AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL, so callbacks keep writing to a large log
    while the index builds; a plain CREATE INDEX elsewhere (SQLite has no such option)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("conversations", "0006_dashboard_rollup"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="redacted_at",
            field=models.DateTimeField(
                blank=True, editable=False, null=True, verbose_name="redacted"
            ),
        ),
        AddIndexWithoutBlockingWrites(
            model_name="message",
            index=models.Index(
                condition=models.Q(("redacted_at__isnull", True)),
                fields=["tenant", "created_at"],
                name="msg_retention_idx",
            ),
        ),
    ]
