"""A trigram index for searching the log's text on PostgreSQL (pg_trgm).

Django's `content__icontains` is `UPPER(content) LIKE UPPER('%…%')` on PostgreSQL, so the
index is on UPPER(content), with gin_trgm_ops: it serves searches of three characters or
more, Chinese included (pg_trgm counts CJK characters as word characters in a UTF-8
database whose LC_CTYPE is not C).

Built CONCURRENTLY, so a large log keeps taking messages while it builds (hence a
migration outside a transaction). The index is not in Message.Meta: on SQLite, which
searches with a plain LIKE, Django would try to build it whenever it rebuilds the table.
CREATE EXTENSION needs a superuser, or (PostgreSQL 13+, pg_trgm being trusted) the
database's owner.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

# Written out: Django's GinIndex(OpClass(Upper("content"), …)) compiles right only with
# django.contrib.postgres installed, which nothing else here needs.
CREATE = (
    "CREATE INDEX CONCURRENTLY msg_content_trgm_idx ON conversations_message"
    " USING gin (UPPER(content) gin_trgm_ops)"
)
DROP = "DROP INDEX CONCURRENTLY IF EXISTS msg_content_trgm_idx"


def on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY refuses to run in a transaction

    dependencies = [
        ("conversations", "0007_message_redaction"),
    ]

    operations = [
        TrigramExtension(),
        migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP)),
    ]
