"""The product's tables keep no index another one already serves.

Every write of a row adds an entry to each of its table's indexes (and on PostgreSQL an
UPDATE that changes an indexed column adds one to every index). A message row is
written about four times on its way, so an index whose leading columns another index
has too costs every message, and serves no query the other does not (Django gives each
foreign key an index of its own unless told `db_index=False`).
"""

import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's catalog"),
]

APPS = ("channels_im_", "conversations_", "tenants_")

# Each plain B-tree index (not unique, no WHERE, no expression) whose columns, with their
# operator classes, begin another B-tree index of its table that has no WHERE either.
_SERVED_BY_ANOTHER = """
    WITH indexes AS (
        SELECT i.indrelid::regclass::text AS table_name, i.indexrelid::regclass::text AS name,
            string_to_array(i.indkey::text, ' ') AS columns,
            string_to_array(i.indclass::text, ' ') AS classes,
            i.indisunique AS is_unique, i.indpred IS NOT NULL AS partial,
            i.indexprs IS NOT NULL AS expression, am.amname AS method
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am am ON am.oid = c.relam
        WHERE c.relnamespace = 'public'::regnamespace
    )
    SELECT plain.table_name, plain.name, wider.name
    FROM indexes plain JOIN indexes wider
        ON wider.table_name = plain.table_name AND wider.name <> plain.name
    WHERE plain.method = 'btree' AND wider.method = 'btree'
        AND NOT (plain.is_unique OR plain.partial OR plain.expression)
        AND NOT (wider.partial OR wider.expression)
        AND cardinality(plain.columns) <= cardinality(wider.columns)
        AND plain.columns = wider.columns[1:cardinality(plain.columns)]
        AND plain.classes = wider.classes[1:cardinality(plain.classes)]
"""


def test_no_index_of_the_products_tables_is_the_start_of_another():
    with connection.cursor() as cursor:
        cursor.execute(_SERVED_BY_ANOTHER)
        found = cursor.fetchall()
    assert [row for row in found if row[0].startswith(APPS)] == []
    # The query finds what it looks for: Django's own tables keep such indexes.
    assert ("auth_permission", "auth_permission_content_type_id_2f476e4b") in [
        row[:2] for row in found
    ]


@pytest.mark.parametrize(
    ("table", "column", "index"),
    [
        ("conversations_message", "tenant_id", "msg_tenant_recent_idx"),
        ("conversations_message", "conversation_id", "msg_context_idx"),
        ("conversations_conversation", "tenant_id", "conv_tenant_recent_idx"),
        ("conversations_conversation", "bot_id", "conv_session_idx"),
        ("conversations_quotause", "tenant_id", "unique_quota_use_subject"),
    ],
)
def test_a_lookup_by_a_foreign_key_without_an_index_of_its_own_is_served(table, column, index):
    """What deleting a tenant, a bot or a session asks of these tables (the cascade)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # an empty table is cheaper read whole
        cursor.execute(f"EXPLAIN SELECT 1 FROM {table} WHERE {column} = 1")  # noqa: S608
        plan = "\n".join(line for (line,) in cursor.fetchall())
    # An index scan, index-only scan or bitmap scan of it, as the table's statistics say.
    assert f" {index} " in plan and "Seq Scan" not in plan, plan
