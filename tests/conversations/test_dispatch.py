"""The question dispatcher (conversations/dispatch.py): the database announces each new
question, and exactly one elected worker thread publishes its task. PostgreSQL only:
elsewhere the request publishes (tests/e2e cover both paths with real workers)."""

import threading
import time

import psycopg
import pytest
from django.db import connection, connections

from channels_im.platforms.base import InboundMessage
from conversations import dispatch, tasks
from conversations.models import Message
from conversations.services import receive
from tests.factories import ConversationFactory, MessageFactory

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only"),
    pytest.mark.django_db(transaction=True),
]


def test_a_new_question_is_announced_at_commit_and_nothing_else_is():
    params = connections["default"].get_connection_params()
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {dispatch.CHANNEL}")
        conversation = ConversationFactory()
        question = MessageFactory(conversation=conversation, status=Message.Status.QUEUED)
        MessageFactory(conversation=conversation, status=Message.Status.ANSWERED)
        MessageFactory(
            conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.QUEUED
        )
        heard = [int(n.payload) for n in listener.notifies(timeout=1.0)]
    assert heard == [question.pk]


def test_a_message_over_the_rate_limit_is_never_announced(wecom_bot, monkeypatch):
    """Stored refused, not queued and then refused: no worker may take it in between."""
    monkeypatch.setattr(tasks, "enqueue", lambda *args, **kwargs: None)  # the refusal notice
    wecom_bot.tenant.user_rate_limit_per_minute = 1
    wecom_bot.tenant.save()
    params = connections["default"].get_connection_params()
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {dispatch.CHANNEL}")
        asked = receive(wecom_bot, InboundMessage("r1", "alice", "alice", "hi"))
        over = receive(wecom_bot, InboundMessage("r2", "alice", "alice", "hi again"))
        heard = [int(n.payload) for n in listener.notifies(timeout=1.0)]
    assert over.status == Message.Status.RATE_LIMITED
    assert heard == [asked.pk]


@pytest.fixture
def producers() -> list[object]:
    """The producer each publish of the `published` fixture went through."""
    return []


@pytest.fixture
def published(monkeypatch, producers):
    """The questions whose task a dispatcher published, and which dispatcher did."""
    calls: list[tuple[int, str]] = []
    lock = threading.Lock()

    def record(message_id: int, producer: object = None) -> None:
        with lock:
            calls.append((message_id, threading.current_thread().name))
            producers.append(producer)

    monkeypatch.setattr(dispatch, "_enqueue", record)
    return calls


@pytest.fixture
def dispatchers():
    started: list[dispatch.Dispatcher] = []

    def start(name: str) -> dispatch.Dispatcher:
        step = dispatch.Dispatcher(worker=None)
        step.start(worker=None)
        assert step.thread is not None
        step.thread.name = name
        started.append(step)
        return step

    yield start
    for step in started:
        step.stop(worker=None)


def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def queued_question() -> Message:
    return MessageFactory(status=Message.Status.QUEUED)


def test_one_of_several_candidates_publishes_each_question_once(published, dispatchers):
    first = dispatchers("first")
    until(first.listening.is_set)
    dispatchers("second")
    questions = [queued_question() for _ in range(5)]
    until(lambda: len(published) >= 5)
    time.sleep(0.5)  # a second publisher, if there were one, would have spoken by now
    assert sorted(published) == sorted((q.pk, "first") for q in questions)


def test_a_dispatcher_publishes_through_one_producer_while_elected(
    published, producers, dispatchers
):
    """Taken from Celery's pool once, not for each task."""
    waiting = queued_question()  # enqueued at its election
    only = dispatchers("only")
    until(only.listening.is_set)
    later = [queued_question() for _ in range(3)]
    until(lambda: len(published) >= 4)
    assert [pk for pk, _ in published] == [waiting.pk, *(q.pk for q in later)]
    assert len({id(producer) for producer in producers}) == 1
    assert producers[0] is not None and hasattr(producers[0], "publish")


def test_a_standby_takes_over_and_publishes_what_arrived_meanwhile(published, dispatchers):
    first = dispatchers("first")
    until(first.listening.is_set)
    dispatchers("second")
    assert _elected_count() == 1
    first.stop(worker=None)  # its connection closes: the lock is free
    unheard = queued_question()  # announced while no one may be listening
    until(lambda: (unheard.pk, "second") in published, timeout=dispatch.STANDBY_SECONDS + 5)
    later = queued_question()
    until(lambda: (later.pk, "second") in published)
    assert all(name == "second" for _, name in published)


def test_a_question_claimed_already_is_not_published_again_on_takeover(published, dispatchers):
    answered = MessageFactory(status=Message.Status.ANSWERED)
    waiting = queued_question()  # stored while no worker ran
    dispatchers("only")
    until(lambda: (waiting.pk, "only") in published)
    assert answered.pk not in {pk for pk, _ in published}


@pytest.mark.django_db  # in the test's transaction: what runs at commit is caught
@pytest.mark.parametrize("mode, request_publishes", [("notify", False), ("publish", True)])
def test_the_request_publishes_only_when_no_worker_is_woken(
    settings, django_capture_on_commit_callbacks, mode, request_publishes
):
    settings.IM_DISPATCH = mode
    with django_capture_on_commit_callbacks() as on_commit:
        dispatch.question_stored(queued_question().pk)
    assert bool(on_commit) == request_publishes


def _elected_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objid = %s AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())",
            [dispatch._LOCK_KEY],
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("listening", [True, False])
def test_a_connection_that_does_not_hear_its_own_notify_is_reported(caplog, monkeypatch, listening):
    monkeypatch.setattr(dispatch, "STANDBY_SECONDS", 0.5)
    params = connections["default"].get_connection_params()
    with psycopg.connect(**params, autocommit=True) as listener:
        if listening:
            listener.execute(f"LISTEN {dispatch.CHANNEL}")
        dispatch._check_echo(listener)  # without LISTEN, as through a pooling proxy
    reported = any("IM_DISPATCH=publish" in r.getMessage() for r in caplog.records)
    assert reported is not listening
