"""The product's tables keep every index and constraint their models declare, no index
another one already serves, and an index for each foreign key.

Every write of a row adds an entry to each of its table's indexes (and on PostgreSQL an
UPDATE that changes an indexed column adds one to every index). A question and its
answer take about five writes, so an index whose leading columns another index has too
costs every message, and serves no query the other does not (Django gives each
foreign key an index of its own unless told `db_index=False`).
"""

import pytest
from django.apps import apps
from django.db import connection

pytestmark = pytest.mark.django_db

APPS = ("channels_im", "conversations", "tenants")
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="its catalog")

# Each plain B-tree index (not unique, no WHERE, no expression) whose key columns, with
# their operator classes, collations and orders, begin another valid B-tree index of its
# table that has no WHERE either.
_SERVED_BY_ANOTHER = """
    WITH indexes AS (
        SELECT i.indrelid::regclass::text AS table_name, i.indexrelid::regclass::text AS name,
            (string_to_array(i.indkey::text, ' '))[1:i.indnkeyatts] AS columns,
            string_to_array(i.indclass::text, ' ') AS classes,
            string_to_array(i.indcollation::text, ' ') AS collations,
            (string_to_array(i.indoption::text, ' '))[1:i.indnkeyatts] AS orders,
            i.indisunique AS is_unique, i.indisvalid AS valid,
            i.indpred IS NOT NULL AS partial, i.indexprs IS NOT NULL AS expression,
            am.amname AS method
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am am ON am.oid = c.relam
        WHERE c.relnamespace = 'public'::regnamespace
    )
    SELECT plain.table_name, plain.name, wider.name
    FROM indexes plain JOIN indexes wider
        ON wider.table_name = plain.table_name AND wider.name <> plain.name
    WHERE plain.method = 'btree' AND wider.method = 'btree' AND wider.valid
        AND NOT (plain.is_unique OR plain.partial OR plain.expression)
        AND NOT (wider.partial OR wider.expression)
        AND cardinality(plain.columns) <= cardinality(wider.columns)
        AND plain.columns = wider.columns[1:cardinality(plain.columns)]
        AND plain.classes = wider.classes[1:cardinality(plain.columns)]
        AND plain.collations = wider.collations[1:cardinality(plain.columns)]
        AND plain.orders = wider.orders[1:cardinality(plain.columns)]
"""

# The columns that lead a valid B-tree index with no WHERE, by table.
_LEADING = """
    SELECT i.indrelid::regclass::text, a.attname
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_am am ON am.oid = c.relam
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE c.relnamespace = 'public'::regnamespace AND am.amname = 'btree' AND i.indisvalid
        AND i.indpred IS NULL
"""


# Foreign keys left without an index, and why.
UNINDEXED = {
    # Its rows live only while their question waits: deleting a tenant reads the few whole.
    ("conversations_admission", "tenant_id"),
}


def models():
    return [model for app in APPS for model in apps.get_app_config(app).get_models()]


def test_every_constraint_and_index_the_models_declare_is_in_the_database():
    """Django's AlterField of a foreign key's db_index drops every index on that column
    alone, a partial unique constraint's included; the migrations must not."""
    missing = []
    with connection.cursor() as cursor:
        for model in models():
            found = connection.introspection.get_constraints(cursor, model._meta.db_table)
            declared = [*model._meta.constraints, *model._meta.indexes]
            missing += [(model._meta.db_table, c.name) for c in declared if c.name not in found]
    assert missing == []


@on_postgresql
def test_no_index_of_the_products_tables_is_the_start_of_another():
    with connection.cursor() as cursor:
        cursor.execute(_SERVED_BY_ANOTHER)
        found = cursor.fetchall()
    assert [row for row in found if row[0].startswith(APPS)] == []
    # The query finds what it looks for: Django's own tables keep such indexes.
    assert ("auth_permission", "auth_permission_content_type_id_2f476e4b") in [
        row[:2] for row in found
    ]


@on_postgresql
def test_every_foreign_key_leads_an_index():
    """What deleting a tenant, a bot or a session asks of these tables (the cascade)."""
    with connection.cursor() as cursor:
        cursor.execute(_LEADING)
        leading = set(cursor.fetchall())
    keys = {
        (model._meta.db_table, field.column)
        for model in models()
        for field in model._meta.concrete_fields
        if field.is_relation
    }
    assert len(keys) > 15  # the models' foreign keys were found
    assert sorted(keys - leading - UNINDEXED) == []
