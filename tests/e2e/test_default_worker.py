"""A worker started the standard way (`celery -A assistant worker`, no -Q) does all the
product's work, and /readyz sees it by its heartbeat."""

import pytest

from conversations.heartbeat import unconsumed
from conversations.models import Message
from conversations.tasks import sweep_stuck_messages
from tests.e2e.worker import answered, wait_for
from tests.factories import BotFactory, MessageFactory, TenantFactory

pytestmark = pytest.mark.e2e


def test_it_runs_the_sweep_and_the_answers_it_enqueues(spawn_worker, fake_ollama, fake_platforms):
    # The sweep runs on the delivery queue and answers on the inference queue.
    worker = spawn_worker(IM_STUCK_AFTER_SECONDS="0")
    tenant = TenantFactory(model_endpoint=fake_ollama.url)
    lost = MessageFactory(  # stored, but its task never reached a worker
        conversation__bot=BotFactory(tenant=tenant, platform="wecom"),
        status=Message.Status.QUEUED,
    )
    sweep_stuck_messages.delay()

    [reply] = answered(worker=worker)
    assert reply.reply_to_id == lost.pk
    assert len(fake_platforms.messages("wecom")) == 1


def test_readyz_reports_a_worker_while_it_beats(client, spawn_worker, shared_cache):
    worker = spawn_worker(CACHE_URL=shared_cache, IM_WORKER_HEARTBEAT_SECONDS="0.5")

    def worker_check() -> bool:
        return client.get("/readyz").json()["checks"]["worker"]

    wait_for(worker_check, timeout=30, worker=worker)
    assert client.get("/readyz").json()["status"] == "ok"
    worker.stop()
    wait_for(lambda: not worker_check(), timeout=5)  # three missed beats


def test_readyz_wants_every_queue_consumed(client, spawn_worker, shared_cache):
    spawn_worker(
        queues="inference,granted", CACHE_URL=shared_cache, IM_WORKER_HEARTBEAT_SECONDS="0.5"
    )
    # Heartbeats for those queues arrive, and still no worker takes deliveries.
    queues = ["inference", "granted", "delivery"]
    wait_for(lambda: unconsumed(queues) == ["delivery"], timeout=30)
    assert client.get("/readyz").json()["checks"]["worker"] is False

    spawn_worker(queues="delivery", CACHE_URL=shared_cache, IM_WORKER_HEARTBEAT_SECONDS="0.5")
    wait_for(lambda: client.get("/readyz").json()["checks"]["worker"], timeout=30)


def test_it_touches_its_heartbeat_file_again_and_again(spawn_worker, tmp_path):
    """What deploy/worker.yaml's liveness probe reads: the file's age."""
    alive = tmp_path / "alive"
    worker = spawn_worker(IM_WORKER_HEARTBEAT_FILE=str(alive), IM_WORKER_HEARTBEAT_SECONDS="0.5")
    first = wait_for(lambda: alive.exists() and alive.stat().st_mtime, timeout=30, worker=worker)
    wait_for(lambda: alive.stat().st_mtime > first, timeout=5, worker=worker)
