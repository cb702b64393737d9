"""Timestamps read through the product's PostgreSQL connections (common/postgresql/base.py,
UtcLoader): the same aware datetimes in UTC as Django's own loader gives, by every
way the product reads them."""

import datetime

import pytest
from django.db import connection, connections
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format

from common.postgresql import prepared_cursor
from common.postgresql.base import _COMPILED, _TIMESTAMPTZ, UtcLoader
from conversations.models import Message
from tests.factories import MessageFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's own loader"),
]

# Microseconds, and a day and hour where a zone other than UTC would show.
WRITTEN = datetime.datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=datetime.UTC)
SQL = f"SELECT created_at FROM {Message._meta.db_table} WHERE id = %s"  # noqa: S608


@pytest.fixture
def row() -> Message:
    message = MessageFactory()
    Message.objects.filter(pk=message.pk).update(created_at=WRITTEN)
    return message


def test_every_way_reads_the_instant_written_aware_in_utc(row):
    read = {"orm": Message.objects.values_list("created_at", flat=True).get(pk=row.pk)}
    with connection.cursor() as cursor:
        cursor.execute(SQL, [row.pk])
        (read["cursor"],) = cursor.fetchone()
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)  # Django's own loader
        cursor.execute(SQL, [row.pk])
        (read["django's loader"],) = cursor.fetchone()
    with prepared_cursor() as cursor:
        for _ in range(6):  # prepared from the fifth run on
            cursor.execute(SQL, [row.pk])
            (read["prepared"],) = cursor.fetchone()
    assert set(read.values()) == {WRITTEN}
    assert {value.tzinfo for value in read.values()} == {datetime.UTC}


def test_the_connections_timestamps_go_through_the_compiled_loader():
    connection.ensure_connection()
    assert connection.connection.adapters.get_loader(_TIMESTAMPTZ, Format.TEXT) is UtcLoader
    # Without psycopg[binary] every value would still be right, only slow.
    assert _COMPILED.__module__.startswith("psycopg_binary")


def test_a_server_whose_sessions_start_in_another_zone_still_reads_utc():
    """Django sets the session's TimeZone at connect; the loader counts on it."""
    default = connection.settings_dict
    options = {**default["OPTIONS"], "options": "-c TimeZone=Asia/Shanghai"}
    other = type(connections["default"])({**default, "OPTIONS": options})  # a second one
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT current_setting('TimeZone'), %s::timestamptz", [WRITTEN])
            zone, read = cursor.fetchone()
    finally:
        other.close()
    assert (zone, read, read.tzinfo) == ("UTC", WRITTEN, datetime.UTC)
