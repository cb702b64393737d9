"""The one-statement store of PostgreSQL (conversations/intake_sql.py) writes the rows the
ORM would have written: the columns it leaves out take the model's defaults."""

import pytest
from django.db import DataError, connection
from django.test.utils import CaptureQueriesContext

from channels_im.platforms.base import InboundMessage
from conversations.models import Admission, Conversation, Message
from conversations.services import store

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only"),
]


def columns(model) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if not f.primary_key]


def values(instance, names: list[str]) -> dict:
    return {name: getattr(instance, name) for name in names}


def test_the_statement_stores_the_rows_the_orm_would(wecom_bot):
    inbound = InboundMessage(
        external_id="m1",
        sender="alice",
        chat="group-1",
        text="哪台打印机？",
        is_group=True,
        reply_context={"chat_type": "group"},
    )
    returned = store(wecom_bot, inbound, Message.Status.QUEUED)
    row = Message.objects.get(pk=returned.pk)
    session = Conversation.objects.get(pk=row.conversation_id)

    by_orm = Message(
        tenant_id=wecom_bot.tenant_id,
        bot=wecom_bot,
        conversation_id=session.pk,
        role=Message.Role.USER,
        content="哪台打印机？",
        sender="alice",
        external_id="m1",
        status=Message.Status.QUEUED,
        reply_context={"is_group": True, "chat_type": "group"},
        created_at=row.created_at,
    )
    assert values(row, columns(Message)) == values(by_orm, columns(Message))
    assert values(returned, columns(Message)) == values(row, columns(Message))
    assert not returned._state.adding

    session_by_orm = Conversation(
        tenant_id=wecom_bot.tenant_id,
        bot=wecom_bot,
        chat_id="group-1",
        user_id="alice",
        started_at=row.created_at,
        last_activity_at=row.created_at,
    )
    assert values(session, columns(Conversation)) == values(session_by_orm, columns(Conversation))


def test_a_copy_stores_nothing_and_a_refused_value_leaves_no_session(wecom_bot):
    first = store(
        wecom_bot,
        InboundMessage(external_id="m1", sender="a", chat="c", text="hi"),
        Message.Status.QUEUED,
    )
    assert (
        store(
            wecom_bot,
            InboundMessage(external_id="m1", sender="a", chat="c", text="hi"),
            Message.Status.QUEUED,
        )
        is None
    )
    refused = InboundMessage(external_id="m2", sender="b", chat="new", text="hi")
    # Past what InboundMessage lets through: the database's own refusal, the net under it.
    object.__setattr__(refused, "chat", "c" * 201)
    with pytest.raises(DataError):
        store(wecom_bot, refused, Message.Status.QUEUED)
    assert list(Conversation.objects.values_list("pk", flat=True)) == [first.conversation_id]


def test_the_same_statement_puts_a_question_in_its_model_endpoints_line(wecom_bot):
    def stored(external_id: str, status: str) -> Message:
        inbound = InboundMessage(external_id=external_id, sender="a", chat="c", text="hi")
        return store(wecom_bot, inbound, status)

    first = stored("m1", Message.Status.QUEUED)  # and its endpoint's row, made for it
    with CaptureQueriesContext(connection) as queries:
        second = stored("m2", Message.Status.QUEUED)
    # The savepoint's statements aside: this test runs in a transaction, a callback not.
    assert len([q for q in queries if "SAVEPOINT" not in q["sql"]]) == 1
    ignored = stored("m3", Message.Status.IGNORED)
    waiting = Admission.objects.filter(
        lease_until__isnull=True, cap=wecom_bot.tenant.max_concurrency
    )
    assert list(waiting.values_list("message_id", flat=True).order_by("pk")) == [
        first.pk,
        second.pk,
    ]
    assert ignored.pk is not None


def prepared(fragment: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            [f"%{fragment}%"],
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("threshold", [5, None], ids=["prepared", "off"])
def test_the_intake_is_planned_once_per_connection(wecom_bot, threshold):
    """psycopg prepares a statement the fifth time a connection runs it (settings.py:
    DATABASE_PREPARED_STATEMENTS); planning the intake each time took as long as running
    it. Off (None), for a transaction-pooling proxy, nothing is prepared."""
    connection.ensure_connection()
    before = connection.connection.prepare_threshold
    connection.connection.prepare_threshold = threshold
    with connection.cursor() as cursor:
        # What earlier tests prepared on this connection goes (psycopg forgets it too).
        cursor.execute("DEALLOCATE ALL")
    assert prepared("INSERT INTO conversations_admission") == 0
    try:
        for n in range(7):
            inbound = InboundMessage(external_id=f"p{n}", sender="a", chat="c", text="hi")
            assert store(wecom_bot, inbound, Message.Status.QUEUED) is not None
        assert prepared("INSERT INTO conversations_admission") == (1 if threshold else 0)
    finally:
        connection.connection.prepare_threshold = before
