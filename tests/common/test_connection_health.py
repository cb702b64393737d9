"""The database connection's health check (common/postgresql): a connection the server
dropped is replaced before a callback uses it, and a healthy one costs no query."""

import select
import time

import psycopg
import pytest
from django.db import connection

from common.postgresql import prepared_cursor
from conversations.models import Message
from tests.callbacks.wecom import wecom_post, wecom_text_xml, with_query

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's own connections"),
]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def from_outside(sql: str, *params):
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname="postgres"
    ) as other:
        return other.execute(sql, params).fetchone()


@pytest.fixture
def checked():
    """Makes the health check due, as at the start of every request and task."""
    connection.ensure_connection()
    assert connection.health_check_enabled  # settings turn it on for PostgreSQL

    def due():
        connection.health_check_done = False

    return due


def test_a_callback_after_the_server_dropped_the_connection_is_stored(client, wecom_bot, checked):
    dropped = backend_pid()
    from_outside("SELECT pg_terminate_backend(%s)", dropped)
    # The server's goodbye reaches the socket before the next request does.
    select.select([connection.connection.fileno()], [], [], 5)
    checked()

    query, body = wecom_post(wecom_bot.credentials, wecom_text_xml("still there?"))
    response = client.post(with_query(wecom_bot.callback_path, query), body, "text/xml")

    assert response.status_code == 200
    assert Message.objects.filter(content="still there?").exists()
    assert backend_pid() != dropped


def test_a_healthy_connection_is_kept_without_a_query(checked):
    pid = backend_pid()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last statement'")
    checked()

    connection.close_if_health_check_failed()

    assert connection.health_check_done
    (last,) = from_outside("SELECT query FROM pg_stat_activity WHERE pid = %s", pid)
    assert last == "SELECT 'the last statement'"
    assert backend_pid() == pid


def test_a_pooled_connection_is_checked_without_a_query_and_replaced_once_dropped():
    from common.postgresql.base import DatabaseWrapper, check_pooled

    settings = {
        **connection.settings_dict,
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"pool": {"min_size": 1, "max_size": 1, "timeout": 5}},
    }
    pooled = DatabaseWrapper(settings, alias="pool-health")
    try:
        assert pooled.pool._check is check_pooled
        pooled.pool.open(wait=True)
        with pooled.pool.connection() as conn:
            first = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with pooled.pool.connection() as conn:  # checked out again: the same, healthy one
            assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == first
        from_outside("SELECT pg_terminate_backend(%s)", first)
        time.sleep(0.5)  # the server's goodbye reaches the idle connection's socket
        with pooled.pool.connection() as conn:  # the check saw it dropped: a new one
            assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] != first
    finally:
        pooled.close_pool()


def test_a_prepared_cursor_first_after_the_server_dropped_the_connection_reconnects(checked):
    dropped = backend_pid()
    from_outside("SELECT pg_terminate_backend(%s)", dropped)
    select.select([connection.connection.fileno()], [], [], 5)
    checked()

    with prepared_cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != dropped
