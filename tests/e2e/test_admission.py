"""Model admission across real worker processes: a hung endpoint holds only its own slots,
the cap holds whichever process answers, turns go in arrival order and round-robin between
tenants, and a killed worker's slot frees itself."""

import itertools
import signal
import statistics

import pytest

from conversations.models import Admission, Message
from tests.callbacks.wecom import message_request
from tests.e2e.worker import Worker, wait_for
from tests.factories import BotFactory, TenantFactory
from tests.fakes.ollama import FakeOllama

pytestmark = pytest.mark.e2e

IDS = itertools.count()


@pytest.fixture
def hung_endpoint():
    with FakeOllama() as server:
        server.hang = True
        yield server
        server.hang = False
        server.release()  # the workers' requests end, so the workers stop in time


def post(client, bot, text) -> Message:
    response = client.generic(**message_request(bot, text, f"e2e-admission-{next(IDS)}"))
    assert response.status_code == 200
    return Message.objects.get(bot=bot, content=text)


def answer_seconds(client, bot, text, worker: Worker) -> float:
    """Ask and wait for the answer; the seconds from the question's arrival to its answer
    sent, as its row records them."""
    question = post(client, bot, text)
    wait_for(lambda: _status(question) == "answered", timeout=30, worker=worker)
    question.refresh_from_db()
    return question.total_ms / 1000


def _status(question) -> str:
    return Message.objects.get(pk=question.pk).status


def waiting() -> int:
    return Admission.objects.filter(lease_until__isnull=True).count()


def test_a_tenant_whose_endpoint_hangs_delays_no_other_tenant(
    client, spawn_worker, fake_ollama, fake_platforms, hung_endpoint
):
    hung = TenantFactory(model_endpoint=hung_endpoint.url, max_concurrency=2)
    quiet = TenantFactory(model_endpoint=fake_ollama.url)
    hung_bot, quiet_bot = BotFactory(tenant=hung), BotFactory(tenant=quiet)
    fake_ollama.first_token_delay = 0.5
    worker = spawn_worker()
    spawn_worker()  # four processes in all: the hung endpoint may hold two
    answer_seconds(client, quiet_bot, "warm-up", worker)
    alone = [answer_seconds(client, quiet_bot, f"alone {n}", worker) for n in range(3)]

    for n in range(10):
        post(client, hung_bot, f"hung {n}")
    wait_for(lambda: hung_endpoint.in_flight == 2 and waiting() == 8, timeout=30, worker=worker)
    beside = [answer_seconds(client, quiet_bot, f"beside {n}", worker) for n in range(3)]

    assert max(beside) <= statistics.median(alone) + 1.0, (alone, beside)
    assert hung_endpoint.peak_in_flight == 2  # the 8 others never reached it
    assert Message.objects.filter(bot=hung_bot, status="queued").count() == 8


def test_the_cap_holds_whichever_worker_process_answers(
    client, spawn_worker, fake_ollama, fake_platforms
):
    bot = BotFactory(tenant=TenantFactory(model_endpoint=fake_ollama.url, max_concurrency=2))
    fake_ollama.first_token_delay = 0.3
    worker = spawn_worker()
    spawn_worker()
    spawn_worker()  # six processes for a cap of two
    questions = [post(client, bot, f"question {n}") for n in range(10)]
    done = Message.objects.filter(pk__in=[q.pk for q in questions], status="answered")
    wait_for(lambda: done.count() == 10, timeout=60, worker=worker)
    assert fake_ollama.peak_in_flight == 2
    answers = [t for t in fake_platforms.wecom_texts() if not t.startswith("Queued")]
    assert len(answers) == 10  # a slow machine may add queue notices, never a second answer
    assert not Admission.objects.exists()


def test_turns_go_in_arrival_order_and_round_robin_between_tenants(
    client, spawn_worker, fake_ollama, fake_platforms
):
    """Tenants A and B share an endpoint with one slot, held by A's first question while
    A asks four more and then B two: B's first goes next (A holds the slot), then A's and
    B's alternate, then A's last ones in the order they came."""
    tenant_a = TenantFactory(model_endpoint=fake_ollama.url, max_concurrency=1)
    tenant_b = TenantFactory(model_endpoint=f"{fake_ollama.url}/", max_concurrency=1)
    bot_a, bot_b = BotFactory(tenant=tenant_a), BotFactory(tenant=tenant_b)
    fake_ollama.hang = True
    worker = spawn_worker()
    spawn_worker()
    post(client, bot_a, "A0")
    wait_for(lambda: fake_ollama.in_flight == 1, worker=worker)
    for text in ("A1", "A2", "A3", "A4", "B1", "B2"):
        post(client, bot_a if text[0] == "A" else bot_b, text)
    wait_for(lambda: waiting() == 6, worker=worker)

    fake_ollama.hang = False
    fake_ollama.release()
    wait_for(lambda: len(fake_ollama.served) == 7, timeout=60, worker=worker)
    asked = [request["messages"][-1]["content"] for request in fake_ollama.requests]
    assert asked == ["A0", "B1", "A1", "B2", "A2", "A3", "A4"]
    assert fake_ollama.peak_in_flight == 1


def test_a_killed_worker_s_slot_frees_itself_when_its_lease_runs_out(
    client, spawn_worker, fake_ollama, fake_platforms
):
    # A lease must outlast the longest silence of a live answer: connect + OLLAMA_TIMEOUT.
    short = {
        "OLLAMA_CONNECT_TIMEOUT": "0.5",
        "OLLAMA_TIMEOUT": "2",
        "IM_ADMISSION_LEASE_SECONDS": "3",
    }
    bot = BotFactory(tenant=TenantFactory(model_endpoint=fake_ollama.url, max_concurrency=1))
    fake_ollama.hang = True
    first = spawn_worker(**short)
    killed = post(client, bot, "the answer that dies")
    wait_for(lambda: fake_ollama.in_flight == 1, worker=first)
    first.stop(signal.SIGKILL)
    fake_ollama.hang = False
    fake_ollama.release()

    second = spawn_worker(**short)
    after = post(client, bot, "the next question")
    wait_for(lambda: _status(after) == "answered", timeout=30, worker=second)
    # Its slot came from the lease running out: the dead worker's claim still holds its row.
    assert _status(killed) == "answering"
