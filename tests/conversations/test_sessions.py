import uuid
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, connections
from django.utils import timezone

from channels_im.platforms.base import InboundMessage
from conversations.models import Conversation, Message
from conversations.services import receive, store

pytestmark = pytest.mark.django_db


def inbound(sender="alice", chat="chat-1", is_group=False, external_id=None):
    return InboundMessage(
        external_id=external_id or uuid.uuid4().hex,
        sender=sender,
        chat=chat,
        text="hi",
        is_group=is_group,
    )


def session_for(bot, message):
    """The session `message` was stored in, as a callback stores it (one statement on
    PostgreSQL, the ORM's two elsewhere)."""
    return store(bot, message, Message.Status.QUEUED).conversation_id


def make_stale(conversation_id, bot):
    timeout = bot.tenant.session_timeout_seconds
    Conversation.objects.filter(pk=conversation_id).update(
        last_activity_at=timezone.now() - timedelta(seconds=timeout + 1)
    )


def test_a_message_opens_a_session_the_next_one_continues_and_freshens(wecom_bot):
    first = session_for(wecom_bot, inbound())
    assert Conversation.objects.get().pk == first
    Conversation.objects.filter(pk=first).update(
        last_activity_at=timezone.now() - timedelta(seconds=60)
    )
    assert session_for(wecom_bot, inbound()) == first
    assert Conversation.objects.count() == 1
    touched = Conversation.objects.get(pk=first).last_activity_at
    assert timezone.now() - touched < timedelta(seconds=5)


@pytest.fixture
def touch_every(monkeypatch):
    """TOUCH_EVERY long enough that a slow machine cannot outlast it mid-test."""
    every = timedelta(minutes=10)
    monkeypatch.setattr("conversations.sessions.TOUCH_EVERY", every)
    monkeypatch.setattr("conversations.intake_sql.TOUCH_EVERY", every)
    return every


def test_a_session_active_within_touch_every_is_continued_without_a_write(wecom_bot, touch_every):
    first = session_for(wecom_bot, inbound())
    recent = timezone.now() - timedelta(seconds=1)
    Conversation.objects.filter(pk=first).update(last_activity_at=recent)
    assert session_for(wecom_bot, inbound()) == first
    assert Conversation.objects.get(pk=first).last_activity_at == recent


@pytest.fixture
def held_session(wecom_bot):
    """`held(last_activity_at)`: a new session with that activity committed, whose row
    another message then holds (written, not committed yet: its commit waits for the
    disk); returns its id. Twenty people in a shared group session used to queue so, one
    commit after another. Statements here give up after 2 s of waiting for a lock."""
    params = connections["default"].get_connection_params()
    with psycopg.connect(**params) as other, connection.cursor() as cursor:

        def held(last_activity_at):
            first = session_for(wecom_bot, inbound())
            Conversation.objects.filter(pk=first).update(last_activity_at=last_activity_at)
            other.execute(
                "UPDATE conversations_conversation SET last_activity_at = now() WHERE id = %s",
                [first],
            )
            return first

        cursor.execute("SET lock_timeout = '2s'")
        try:
            yield held
        finally:
            cursor.execute("RESET lock_timeout")
            other.rollback()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row locks")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("age", [timedelta(seconds=0), timedelta(seconds=60)])
def test_a_message_does_not_queue_behind_another_of_its_session(wecom_bot, held_session, age):
    # Its activity fresh (no write due) or a minute old (a write due, left to the holder).
    committed = timezone.now() - age
    first = held_session(committed)
    assert session_for(wecom_bot, inbound()) == first
    assert Conversation.objects.get(pk=first).last_activity_at == committed


def test_silence_past_the_tenants_timeout_opens_a_new_session(wecom_bot):
    first = session_for(wecom_bot, inbound())
    make_stale(first, wecom_bot)
    second = session_for(wecom_bot, inbound())
    assert second != first
    assert Conversation.objects.get(pk=second).user_id == "alice"


def test_a_closed_session_is_not_continued(wecom_bot):
    first = session_for(wecom_bot, inbound())
    Conversation.objects.filter(pk=first).update(closed_at=timezone.now())
    assert session_for(wecom_bot, inbound()) != first


def test_sessions_are_per_bot_chat_and_user(wecom_bot, tenant_a):
    from tests.factories import BotFactory

    other_bot = BotFactory(tenant=tenant_a, platform="wecom", name="other")
    ids = {
        session_for(wecom_bot, inbound()),
        session_for(wecom_bot, inbound(sender="bob")),
        session_for(wecom_bot, inbound(chat="chat-2")),
        session_for(other_bot, inbound()),
    }
    assert len(ids) == 4


def test_a_shared_group_session_ignores_the_sender_but_not_in_one_to_one_chats(wecom_bot):
    wecom_bot.shared_group_session = True
    group = session_for(wecom_bot, inbound(sender="alice", is_group=True))
    assert session_for(wecom_bot, inbound(sender="bob", is_group=True)) == group
    assert Conversation.objects.get(pk=group).user_id == ""
    assert session_for(wecom_bot, inbound(sender="alice")) != group


def test_of_two_fresh_sessions_the_newest_is_continued(wecom_bot):
    # Two first messages racing each open one; later messages must all pick the same.
    now = timezone.now()
    older, newer = (
        Conversation.objects.create(
            tenant=wecom_bot.tenant,
            bot=wecom_bot,
            chat_id="chat-1",
            user_id="alice",
            last_activity_at=now - timedelta(seconds=seconds),
        ).pk
        for seconds in (20, 10)
    )
    assert session_for(wecom_bot, inbound()) == newer
    assert session_for(wecom_bot, inbound()) == newer
    assert Conversation.objects.get(pk=older).last_activity_at < now


def test_a_late_retry_that_opened_a_session_closes_it_again(wecom_bot):
    # The retry finds its first copy's session gone quiet and opens one, then turns out
    # to be a duplicate: no later message may continue that empty session.
    first = receive(wecom_bot, inbound(external_id="m1"))
    make_stale(first.conversation_id, wecom_bot)
    assert receive(wecom_bot, inbound(external_id="m1")) is None
    [opened_by_retry] = Conversation.objects.exclude(pk=first.conversation_id)
    assert opened_by_retry.closed_at is not None

    later = receive(wecom_bot, inbound(external_id="m2"))
    assert later.conversation_id not in (first.conversation_id, opened_by_retry.pk)


def test_a_retry_within_the_session_leaves_it_open(wecom_bot):
    first = receive(wecom_bot, inbound(external_id="m1"))
    assert receive(wecom_bot, inbound(external_id="m1")) is None
    assert Conversation.objects.get().closed_at is None
    assert receive(wecom_bot, inbound(external_id="m2")).conversation_id == first.conversation_id
