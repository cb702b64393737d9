"""Exactly one answer, whatever fails: a worker killed mid-answer, a broker outage, and the
same callback three times at once. Each test really does it, against real processes."""

import shutil
import signal
import threading

import pytest
import requests
from django.db import connection

from conversations.models import Message
from conversations.tasks import sweep_stuck_messages
from tests.callbacks.wecom import message_request
from tests.e2e.worker import RedisServer, answered, use_broker, wait_for
from tests.factories import BotFactory, TenantFactory

pytestmark = pytest.mark.e2e

# Short claims, so a dead worker's row is handed on within the test's patience.
FAST_RECOVERY = {"IM_CLAIM_SECONDS": "3", "CELERY_TASK_SOFT_TIME_LIMIT": "2"}


@pytest.fixture
def bot(transactional_db, fake_ollama):
    tenant = TenantFactory(model_endpoint=fake_ollama.url)
    return BotFactory(tenant=tenant, platform="wecom")


def post(client, bot, text, msg_id):
    response = client.generic(**message_request(bot, text, msg_id))
    assert response.status_code == 200
    return response


def sweep_when_due(settings_, worker) -> None:
    settings_.IM_STUCK_AFTER_SECONDS = 0
    wait_for(lambda: sweep_stuck_messages() > 0, timeout=20, worker=worker)


def test_a_worker_killed_mid_answer_answers_once_after_recovery(
    client, bot, spawn_worker, fake_ollama, fake_platforms, settings
):
    fake_ollama.reply = " ".join(f"word{n}" for n in range(30))
    fake_ollama.chunk_delay = 0.2  # six seconds of streaming: plenty of time to die in
    first = spawn_worker(**FAST_RECOVERY)
    post(client, bot, "a long question", "kill-1")
    wait_for(lambda: fake_ollama.requests, worker=first)
    first.stop(signal.SIGKILL)  # mid-stream: nothing was delivered
    assert fake_platforms.messages("wecom") == []

    fake_ollama.chunk_delay = 0
    second = spawn_worker(**FAST_RECOVERY)
    sweep_when_due(settings, second)
    [sent] = wait_for(lambda: fake_platforms.messages("wecom"), worker=second)
    assert sent["markdown"]["content"] == fake_ollama.reply
    [reply] = answered(worker=second)
    assert reply.reply_to.attempts == 2


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to stop")
def test_a_broker_outage_delays_answers_but_loses_none(
    client, bot, spawn_worker, fake_platforms, settings
):
    broker = RedisServer()
    broker.start()
    original = settings.CELERY_BROKER_URL
    use_broker(broker.url)
    try:
        worker = spawn_worker(CELERY_BROKER_URL=broker.url)
        post(client, bot, "before the outage", "out-1")
        wait_for(lambda: fake_platforms.messages("wecom"), worker=worker)
        # Let the task be acknowledged first: a broker lost during kombu's restore of
        # unacknowledged messages crashes the worker (a Celery bug; compose restarts it).
        wait_for(lambda: broker.unacknowledged() == 0, worker=worker)

        broker.stop()
        post(client, bot, "during the outage", "out-2")  # still 200: stored, not enqueued
        post(client, bot, "still down", "out-3")
        assert Message.objects.filter(role="user", status="queued").count() == 2

        broker.start()  # same port: the worker reconnects by itself
        sweep_when_due(settings, worker)
        wait_for(lambda: len(fake_platforms.messages("wecom")) == 3, timeout=60, worker=worker)
        assert len(answered(3, worker=worker)) == 3
    finally:
        use_broker(original)
        broker.stop()


def test_the_same_callback_three_times_at_once_is_answered_once(
    live_server, bot, worker, fake_ollama, fake_platforms
):
    request = message_request(bot, "hello", "same-1")
    barrier = threading.Barrier(3)
    statuses = []

    def send():
        barrier.wait()
        response = requests.post(
            live_server.url + request["path"],
            data=request["data"],
            headers={"Content-Type": request["content_type"]},
            timeout=30,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200, 200]
    wait_for(lambda: fake_platforms.messages("wecom"), worker=worker)
    wait_for(lambda: Message.objects.filter(role="assistant", status="answered").exists())
    assert Message.objects.filter(role="user").count() == 1
    assert len(fake_ollama.requests) == 1
    assert len(fake_platforms.messages("wecom")) == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a database server to restart")
def test_a_worker_recovers_from_a_database_restart_on_its_own(client, bot, worker, fake_platforms):
    post(client, bot, "before", "db-1")
    # Answered, not merely sent: killed between the send and its record, the first answer
    # would wait out its claim (the sweep's job, not this test's).
    answered(1, worker=worker)
    # What a restart does to every open session: the worker's connections die.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    post(client, bot, "after", "db-2")
    wait_for(lambda: len(fake_platforms.messages("wecom")) == 2, worker=worker)
    answered(2, worker=worker)
