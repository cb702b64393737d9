"""Model admission in one process: an endpoint's slots, whose turn is next, leases that run
out, and a waiting question that holds no worker. Across real worker processes:
tests/e2e/test_admission.py."""

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from channels_im.platforms.base import InboundMessage
from conversations import admission, pipeline, stop_signal, stops, tasks
from conversations.admission import Lease, Waiting
from conversations.claims import Claim, RetryLater
from conversations.models import Admission, Message, ModelEndpoint
from conversations.services import receive
from conversations.turns import Entry, endpoint_key, line_up
from tests.conversations.lines import claim, question
from tests.factories import MessageFactory, TenantFactory

pytestmark = pytest.mark.django_db

QUEUED, ANSWERING, ANSWERED = (
    Message.Status.QUEUED,
    Message.Status.ANSWERING,
    Message.Status.ANSWERED,
)
NOW = timezone.now()


def later(seconds: float):
    return NOW + timedelta(seconds=seconds)


def entry(message_id, tenant_id, *, status=QUEUED, lease=None, claim=None, cap=2):
    """One question at an endpoint; `lease` and `claim`: seconds from NOW they end."""
    return Entry(
        message_id=message_id,
        tenant_id=tenant_id,
        arrived=later(message_id),
        status=status,
        claimed_until=None if claim is None else later(claim),
        lease_until=None if lease is None else later(lease),
        cap=cap,
        notified_at=None,
    )


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://ollama:11434", "http://ollama:11434"),
        ("HTTP://Ollama:11434/", "http://ollama:11434"),
        ("http://ollama:11434/v1", "http://ollama:11434"),
        ("http://ollama:11434/v1/", "http://ollama:11434"),
        ("http://ollama", "http://ollama:80"),
        ("https://llm.example.com/gpu-a", "https://llm.example.com:443/gpu-a"),
        ("https://llm.example.com/gpu-a/v1", "https://llm.example.com:443/gpu-a"),
        ("http://[::1]:11434", "http://[::1]:11434"),
    ],
)
def test_it_names_an_endpoint_by_its_server(url, key):
    assert endpoint_key(url) == key


def test_turns_go_round_robin_between_tenants_in_arrival_order_within_each():
    waiting = [entry(n, 1) for n in (1, 2, 3)] + [entry(n, 2) for n in (4, 5)]
    line = line_up(waiting, NOW, served={})
    assert [e.message_id for e in line.waiting] == [1, 4, 2, 5, 3]


def test_the_tenant_holding_fewer_slots_then_served_least_lately_goes_first():
    """Tenant 1's question 1 holds the slot; tenant 1 asked four more before tenant 2
    asked two. Tenant 1's answers ended last (served: 8)."""
    entries = [entry(1, 1, status=ANSWERING, lease=60, claim=600)]
    entries += [entry(n, 1) for n in (2, 3, 4, 5)] + [entry(n, 2) for n in (6, 7)]
    line = line_up(entries, NOW, served={"1": 8, "2": 7})
    assert [e.message_id for e in line.holding] == [1]
    assert [e.message_id for e in line.waiting] == [6, 2, 7, 3, 4, 5]
    # Nothing held: the tenant whose answer ended least lately first.
    waiting = [entry(n, 1) for n in (2, 3)] + [entry(n, 2) for n in (6, 7)]
    assert [e.message_id for e in line_up(waiting, NOW, {"1": 7, "2": 8}).waiting] == [2, 6, 3, 7]


def test_the_cap_is_the_smallest_among_the_tenants_present():
    entries = [entry(1, 1, cap=4, status=ANSWERING, lease=60), entry(2, 2, cap=1)]
    assert line_up(entries, NOW, {}).cap == 1
    assert line_up(entries[:1], NOW, {}).cap == 4
    assert line_up([], NOW, {}).free == 1


@pytest.mark.parametrize(
    ("case", "fields", "holds", "waits"),
    [
        ("in flight", {"status": ANSWERING, "lease": 60, "claim": 600}, True, False),
        ("granted, its task on the way", {"lease": 60}, True, False),
        ("parked", {"claim": 5}, False, True),
        ("a worker checks on it", {"status": ANSWERING, "claim": 600}, False, True),
        ("dead worker mid-answer", {"status": ANSWERING, "lease": -1, "claim": 600}, False, False),
        ("granted, its task lost", {"lease": -1}, False, True),
        ("dead worker while it waited", {"status": ANSWERING, "claim": -1}, False, False),
        ("answered", {"status": ANSWERED}, False, False),
        # Its worker failed or stopped it before it asked the model.
        ("granted, then finished", {"status": ANSWERED, "lease": 60}, False, False),
    ],
)
def test_who_holds_a_slot_and_who_waits_for_one(case, fields, holds, waits):
    subject = entry(1, 1, **fields)
    assert (subject.holds(NOW), subject.waits(NOW)) == (holds, waits), case


def test_the_estimate_counts_the_answers_before_it_cap_at_a_time_then_its_own():
    waiting = Waiting(
        ahead=3, in_flight=2, cap=2, answer_seconds=8.0, notified_at=None, slot_ends=None
    )
    assert waiting.eta_seconds == 20.0
    assert Waiting(3, 2, 2, None, None, None).eta_seconds is None


# --- in the database ------------------------------------------------------------------


@pytest.fixture
def tenant(db, fake_ollama):
    return TenantFactory(model_endpoint=fake_ollama.url, max_concurrency=2)


@pytest.fixture
def one_slot(tenant):
    tenant.max_concurrency = 1
    tenant.save()
    return tenant


def admit(message, endpoint=None):
    return admission.admit(claim(message), endpoint or message.tenant.endpoint)


def test_it_grants_as_many_slots_as_the_cap_and_lines_up_the_rest(tenant):
    first, second, third, fourth = (question(tenant) for _ in range(4))
    assert isinstance(admit(first), Lease) and isinstance(admit(second), Lease)
    waiting = admit(third)
    assert (waiting.ahead, waiting.in_flight, waiting.cap) == (0, 2, 2)
    assert admit(fourth).ahead == 1
    leases = Admission.objects.filter(lease_until__isnull=False).values_list("pk", flat=True)
    assert set(leases) == {first.pk, second.pk}


def test_a_waiting_question_goes_back_to_the_queue_and_holds_no_worker(one_slot):
    tenant = one_slot
    held = admit(question(tenant, attempts=0))
    waiting_row = question(tenant, attempts=0)
    taken = claim(waiting_row)
    waiting = admission.admit(taken, tenant.endpoint)
    wake = timezone.now() + timedelta(seconds=7)
    with pytest.raises(RetryLater) as later_:
        admission.park(taken, tenant.endpoint, waiting, wake)
    assert 6 < later_.value.countdown <= 7
    waiting_row.refresh_from_db()
    # The claim did no work: not counted as a try, and due again at its wake-up.
    assert (waiting_row.status, waiting_row.attempts) == (QUEUED, 0)
    assert abs((waiting_row.claimed_until - wake).total_seconds()) < 0.01
    assert Claim.take(waiting_row.pk, Message.Role.USER) is None  # not before its wake-up
    assert isinstance(held, Lease)


def test_it_wakes_a_parked_question_when_a_slot_in_use_may_run_out(one_slot):
    tenant = one_slot
    admit(question(tenant))
    Admission.objects.update(lease_until=timezone.now() + timedelta(seconds=3))

    def parked_for() -> float:
        taken = claim(question(tenant))
        waiting = admission.admit(taken, tenant.endpoint)
        with pytest.raises(RetryLater) as later_:
            admission.park(taken, tenant.endpoint, waiting, timezone.now() + timedelta(minutes=1))
        return later_.value.countdown

    assert 2 < parked_for() <= 3  # next in line: it would take that slot
    assert 59 < parked_for() <= 60  # behind it: only its own next notice wakes it


def test_a_freed_slot_goes_to_the_next_question_and_sends_its_task(
    tenant, woken, django_capture_on_commit_callbacks
):
    first, second, third = (question(tenant) for _ in range(3))
    lease = admit(first)
    admit(second)
    parked = claim(third)
    with pytest.raises(RetryLater):
        admission.park(parked, tenant.endpoint, admission.admit(parked, tenant.endpoint), None)
    with django_capture_on_commit_callbacks(execute=True):
        lease.answer_seconds = 4.0
        lease.release()
    assert woken == [third.pk]
    third.refresh_from_db()
    assert third.claimed_until is None  # due now
    Message.objects.filter(pk=third.pk).update(created_at=timezone.now() - timedelta(seconds=2))
    taken = claim(third)
    assert isinstance(admission.admit(taken, tenant.endpoint), Lease)
    # The queue wait its outcome will show runs to its slot, not to its first claim.
    assert claim_row(third).queue_wait_ms < 1000 <= 2000 <= taken.row.queue_wait_ms
    assert not Admission.objects.filter(pk=first.pk).exists()
    assert ModelEndpoint.objects.get().answer_seconds == 4.0


def claim_row(message):
    message.refresh_from_db()
    return message


def test_a_question_granted_while_its_worker_checks_on_it_takes_the_slot_when_it_parks(
    tenant, woken, django_capture_on_commit_callbacks
):
    first, second, third = (question(tenant) for _ in range(3))
    lease = admit(first)
    admit(second)
    checking = claim(third)  # its wake-up: the worker tells the asker where it stands
    waiting = admission.admit(checking, tenant.endpoint)
    with django_capture_on_commit_callbacks(execute=True):
        lease.release()  # meanwhile
    assert woken == []  # its worker goes on with it
    assert isinstance(admission.park(checking, tenant.endpoint, waiting, None), Lease)


def test_a_slot_freed_unseen_while_a_question_lined_up_is_found_when_it_parks(one_slot):
    """The answer that ended looked for waiting questions before this one's row was
    written (a retry lines up as its worker asks): parking, it finds the slot itself."""
    holder = question(one_slot)
    admit(holder)
    taken = claim(question(one_slot))
    waiting = admission.admit(taken, one_slot.endpoint)
    Admission.objects.filter(pk=holder.pk).delete()  # its release, which saw no one

    assert isinstance(admission.park(taken, one_slot.endpoint, waiting, None), Lease)


def test_one_server_s_slots_are_shared_by_its_urls_and_the_smallest_cap_applies(tenant):
    other = TenantFactory(model_endpoint=f"{tenant.endpoint}/v1", max_concurrency=1)
    assert isinstance(admit(question(tenant)), Lease)
    waiting = admit(question(other))
    assert (waiting.cap, waiting.in_flight) == (1, 1)
    assert ModelEndpoint.objects.count() == 1


def test_the_next_slot_goes_to_the_tenant_served_least_lately(one_slot):
    other = TenantFactory(model_endpoint=one_slot.endpoint, max_concurrency=1)
    lease = admit(question(one_slot))
    for waiting in (question(one_slot), question(one_slot), question(other)):
        admit(waiting)
    lease.release()
    assert Admission.objects.get(lease_until__isnull=False).message.tenant == other
    assert ModelEndpoint.objects.get().served == {str(one_slot.pk): 1}


def test_a_slot_whose_lease_ran_out_is_free_and_its_dead_worker_s_question_waits(one_slot):
    tenant = one_slot
    dead = question(tenant)
    admit(dead)
    Admission.objects.filter(pk=dead.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert isinstance(admit(question(tenant)), Lease)
    # The dead worker's claim runs out later: then its question lines up again.
    Message.objects.filter(pk=dead.pk).update(claimed_until=timezone.now())
    assert admit(dead) == Waiting(
        0, 1, 1, None, None, Admission.objects.get(lease_until__gt=NOW).lease_until
    )


def test_an_answer_ending_reads_no_line_when_the_waiting_have_tasks_on_their_way(
    one_slot, woken, django_assert_num_queries
):
    """A burst's questions are in line before their first tasks run; the slot freed is
    given up in two statements, not granted by reading thousands of them under the lock:
    each first task takes a free slot in its turn."""
    tenant = one_slot
    ModelEndpoint.objects.create(key=endpoint_key(tenant.endpoint), served={str(tenant.pk): 1})
    lease = admit(question(tenant))
    coming = question(tenant)
    admission.enter(coming, tenant)
    with django_assert_num_queries(2):  # free the slot unless one is parked, anyone now
        lease.release()
    assert Admission.objects.get(pk=coming.pk).lease_until is None
    assert isinstance(admit(coming), Lease)
    assert woken == []


def test_an_answer_time_within_a_tenth_of_the_average_costs_no_write(
    tenant, django_assert_num_queries
):
    key = endpoint_key(tenant.endpoint)
    ModelEndpoint.objects.create(key=key, served={str(tenant.pk): 1}, answer_seconds=10.0)
    for seconds, statements, learned in ((10.5, 2, 10.0), (20.0, 3, 12.0)):
        lease = admit(question(tenant))
        lease.answer_seconds = seconds
        with django_assert_num_queries(statements):  # the slot freed, the line looked at
            lease.release()
        assert ModelEndpoint.objects.get().answer_seconds == pytest.approx(learned)
    assert not Admission.objects.exists()


def test_an_answer_ending_without_the_lock_still_counts_as_its_tenants_turn(tenant, fake_ollama):
    other = TenantFactory(model_endpoint=fake_ollama.url, max_concurrency=2)
    ModelEndpoint.objects.create(key=endpoint_key(tenant.endpoint), served={str(other.pk): 1})
    lease = admit(question(tenant))
    coming = question(other)
    admission.enter(coming, other)  # its task on its way: no hand-over, no line read
    lease.release()
    served = ModelEndpoint.objects.get().served
    assert served == {str(other.pk): 1, str(tenant.pk): 2}  # the next tie goes to `other`


def test_a_burst_longer_than_the_line_read_keeps_the_turns_and_counts_its_places(
    one_slot, fake_ollama
):
    """Each tenant's first questions decide the turns: a burst of thousands is not read
    for every message."""
    tenant = one_slot
    admit(question(tenant))  # the slot, taken
    burst = [question(tenant) for _ in range(admission._PER_TENANT + 20)]
    for waiting in burst:
        admission.enter(waiting, tenant)  # their first tasks on their way
    other = TenantFactory(model_endpoint=fake_ollama.url, max_concurrency=1)
    late = question(other)
    admission.enter(late, other)

    assert admit(late).ahead == 0  # round-robin: the tenant holding no slot goes next
    assert admit(burst[-1]).ahead == len(burst)  # `late` and the rest of the burst
    with transaction.atomic():
        _, entries, _ = admission._line(endpoint_key(tenant.endpoint), burst[-1])
    # The holder, the burst's first ones, `late` and the caller's own.
    assert len(entries) == 1 + admission._PER_TENANT + 1 + 1


def test_every_place_in_line_names_its_tenant(tenant, wecom_bot):
    """What the index that finds each tenant's first questions reads."""
    entered = question(tenant)
    admission.enter(entered, tenant)  # the endpoint's first: its row is made
    by_intake = receive_question(wecom_bot, "stored and lined up at once")
    by_worker = question(tenant)  # in no line: its worker lines it up
    admit(by_worker)
    tenants = dict(Admission.objects.values_list("message_id", "tenant_id"))
    assert tenants == {
        by_intake.pk: wecom_bot.tenant_id,
        entered.pk: tenant.pk,
        by_worker.pk: tenant.pk,
    }


def test_a_granted_question_is_sent_ahead_of_the_new_questions(settings):
    """Its task goes to a queue of its own, which every worker takes from in turn with
    `inference`: behind the first tasks of every question that came after it, a later
    question would reach the model first."""
    from celery.signals import before_task_publish

    sent: list[tuple[str, list]] = []

    def published(routing_key, body, **kwargs):
        sent.append((routing_key, list(body[0])))

    before_task_publish.connect(published)
    try:  # ids no row has: whichever worker takes these tasks finds nothing to do
        tasks.wake_granted([-7, -8])
        tasks.enqueue(-9, Message.Role.USER)
    finally:
        before_task_publish.disconnect(published)
    assert sent == [("granted", [-7]), ("granted", [-8]), ("inference", [-9])]
    assert "granted" in {queue.name for queue in settings.CELERY_TASK_QUEUES}


def test_a_granted_question_whose_task_was_lost_keeps_its_place(one_slot, woken):
    tenant = one_slot
    lost, newer = question(tenant), question(tenant)
    endpoint = ModelEndpoint.objects.create(key=endpoint_key(tenant.endpoint))
    expired = timezone.now() - timedelta(seconds=1)
    Admission.objects.create(message=lost, endpoint=endpoint, cap=1, lease_until=expired)
    assert admit(newer).ahead == 0
    assert isinstance(admit(lost), Lease)


def test_it_renews_a_lease_at_most_every_quarter_of_its_length(tenant, settings):
    settings.IM_ADMISSION_LEASE_SECONDS = 100
    lease = admit(question(tenant))
    first_end = Admission.objects.get().lease_until
    lease.renew()
    assert Admission.objects.get().lease_until == first_end
    lease.renewed -= 26
    lease.renew()
    assert Admission.objects.get().lease_until > first_end


def test_the_estimate_follows_a_moving_average_of_answer_times(tenant):
    for seconds in (10.0, 20.0):
        lease = admit(question(tenant))
        lease.answer_seconds = seconds
        lease.release()
    assert ModelEndpoint.objects.get().answer_seconds == pytest.approx(12.0)


def test_finished_questions_are_forgotten_at_the_next_turn(tenant):
    answered = question(tenant)
    admit(answered)
    Admission.objects.update(lease_until=None)
    Message.objects.filter(pk=answered.pk).update(status=ANSWERED)
    admit(question(tenant))
    assert not Admission.objects.filter(pk=answered.pk).exists()


# --- the pipeline ------------------------------------------------------------------------


def test_the_pipeline_answers_a_question_that_waited_once_a_slot_frees(
    wecom_bot, fake_ollama, fake_platforms, eager_celery, django_capture_on_commit_callbacks
):
    tenant = wecom_bot.tenant
    tenant.max_concurrency = 1
    tenant.save()
    holder = MessageFactory(conversation__bot=wecom_bot, status=QUEUED)
    lease = admit(holder)
    waiting = MessageFactory(conversation__bot=wecom_bot, status=QUEUED, content="my turn?")
    with pytest.raises(RetryLater):
        pipeline.answer(waiting.pk)
    assert fake_ollama.requests == [] and claim_row(waiting).status == QUEUED
    with django_capture_on_commit_callbacks(execute=True):
        lease.release()
    assert claim_row(waiting).status == ANSWERED
    assert fake_ollama.requests[0]["messages"][-1]["content"] == "my turn?"
    assert waiting.reply.content == fake_ollama.reply
    assert waiting.endpoint == tenant.endpoint
    assert not Admission.objects.exists()  # the answer freed its slot


# --- a place in line from the arrival on ----------------------------------------------------


def receive_question(bot, text):
    inbound = InboundMessage(external_id=text, sender="zhangsan", chat="zhangsan", text=text)
    return receive(bot, inbound)


def test_a_question_takes_its_place_in_line_as_it_arrives(wecom_bot):
    question = receive_question(wecom_bot, "hello")
    place = Admission.objects.get()
    assert (place.message_id, place.lease_until, place.cap) == (question.pk, None, 2)
    assert place.endpoint.key == endpoint_key(wecom_bot.tenant.endpoint)
    receive_question(wecom_bot, "/help")  # the bot answers it: no model, no place
    assert Admission.objects.count() == 1


def test_its_place_is_its_arrival_even_when_a_later_question_is_claimed_first(wecom_bot, woken):
    wecom_bot.tenant.max_concurrency = 1
    wecom_bot.tenant.save()
    lease = admit(receive_question(wecom_bot, "holder"))
    first, second = receive_question(wecom_bot, "first"), receive_question(wecom_bot, "second")
    assert admit(second).ahead == 1  # its worker came first; "first" is still ahead
    lease.release()
    assert Admission.objects.get(lease_until__isnull=False).message_id == first.pk
    assert woken == []  # its own first task is on its way
    assert isinstance(admit(first), Lease)


def test_a_question_a_worker_lined_up_before_its_intake_ended_keeps_that_place(tenant):
    # A sweep that takes every claimable row handed the stored question to a worker
    # before the intake put it in line: the intake finds its place taken, by itself.
    stored = question(tenant)
    assert isinstance(admit(stored), Lease)
    admission.enter(stored, tenant)
    assert Admission.objects.get().lease_until is not None


def parked_behind(tenant, holders: int, waiting: int) -> tuple[list[Lease], list[Message]]:
    """`holders` questions holding slots, and `waiting` parked behind them, in order."""
    leases = [admit(question(tenant)) for _ in range(holders)]
    parked = [question(tenant) for _ in range(waiting)]
    for row in parked:
        taken = claim(row)
        with pytest.raises(RetryLater):
            admission.park(taken, tenant.endpoint, admission.admit(taken, tenant.endpoint), None)
    return leases, parked


def test_a_question_granted_a_slot_then_found_out_of_time_hands_the_slot_on(
    one_slot, woken, fake_platforms, settings, django_capture_on_commit_callbacks
):
    """Its claim comes after the grant (it was parked), and it fails: the slot does not
    wait for someone to read the line again."""
    [holder], [granted, next_] = parked_behind(one_slot, 1, 2)
    with django_capture_on_commit_callbacks(execute=True):
        holder.release()
    assert woken == [granted.pk]
    arrived = timezone.now() - timedelta(seconds=settings.IM_ANSWER_BUDGET_SECONDS + 1)
    Message.objects.filter(pk=granted.pk).update(created_at=arrived)

    with django_capture_on_commit_callbacks(execute=True):
        pipeline.answer(granted.pk)  # its task, sent by the grant

    assert claim_row(granted).status == Message.Status.FAILED
    assert woken == [granted.pk, next_.pk]
    assert Admission.objects.get(lease_until__isnull=False).message_id == next_.pk


def test_a_question_stopped_as_it_was_granted_a_slot_hands_the_slot_on(
    one_slot, woken, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(tasks, "enqueue", lambda *args, **kwargs: None)  # "(stopped)"
    [holder], [granted, next_] = parked_behind(one_slot, 1, 2)
    with django_capture_on_commit_callbacks(execute=True):
        holder.release()
    assert woken == [granted.pk]

    with django_capture_on_commit_callbacks(execute=True):
        stops.stop(granted.pk, stop_signal.COMMAND)  # before its task claims it

    assert claim_row(granted).stopped
    assert woken == [granted.pk, next_.pk]
    assert Admission.objects.get(lease_until__isnull=False).message_id == next_.pk


def test_a_slot_leased_to_a_question_that_failed_meanwhile_is_free_to_others(
    tenant, woken, django_capture_on_commit_callbacks
):
    """Another answer ends between the failed question's outcome and its `leave`: that
    reading of the line takes the failed question's row away, and must count its slot
    as free, since `leave` then finds nothing to hand on."""
    (first, second), (failed, next_, last) = parked_behind(tenant, 2, 3)
    with django_capture_on_commit_callbacks(execute=True):
        first.release()
    Message.objects.filter(pk=failed.pk).update(status=Message.Status.FAILED)

    with django_capture_on_commit_callbacks(execute=True):
        second.release()
        admission.leave(failed.pk)

    assert woken == [failed.pk, next_.pk, last.pk]
    leased = Admission.objects.filter(lease_until__isnull=False)
    assert set(leased.values_list("message_id", flat=True)) == {next_.pk, last.pk}


def test_a_question_waiting_its_turn_is_stopped_at_once(wecom_bot, fake_ollama):
    wecom_bot.tenant.max_concurrency = 1
    wecom_bot.tenant.save()
    admit(receive_question(wecom_bot, "holder"))
    waiting = receive_question(wecom_bot, "a long story, please")
    with pytest.raises(RetryLater):
        pipeline.answer(waiting.pk)  # parked until its next wake-up

    stops.stop(waiting.pk, stop_signal.COMMAND)

    waiting.refresh_from_db()
    assert (waiting.status, waiting.stopped) == (ANSWERED, True)
    assert waiting.reply.content == "(stopped)"
    assert fake_ollama.requests == []


def test_a_question_that_waited_past_its_budget_gets_the_apology_and_leaves_the_line(
    wecom_bot, fake_ollama, fake_platforms, settings
):
    wecom_bot.tenant.max_concurrency = 1
    wecom_bot.tenant.save()
    admit(receive_question(wecom_bot, "holder"))
    waiting = receive_question(wecom_bot, "anyone there?")
    arrived = timezone.now() - timedelta(seconds=settings.IM_ANSWER_BUDGET_SECONDS + 1)
    Message.objects.filter(pk=waiting.pk).update(created_at=arrived)

    pipeline.answer(waiting.pk)  # its wake-up at the end of its budget

    waiting.refresh_from_db()
    assert waiting.status == Message.Status.FAILED and "no answer within" in waiting.error
    assert fake_platforms.wecom_texts()[0].startswith("Sorry")
    assert not Admission.objects.filter(pk=waiting.pk).exists()
    assert fake_ollama.requests == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row locks")
@pytest.mark.django_db(transaction=True)
def test_an_intake_lining_up_behind_a_worker_lining_up_the_same_question_waits(tenant):
    # An endpoint's first question is lined up by its intake after it commits, so a
    # worker (the task the dispatcher sent at that commit) may be lining it up at the same
    # moment, under the endpoint's lock. The intake must wait for that worker, not
    # deadlock with it, and keep the place the worker gave the question.
    stored = question(tenant)
    key, cap = admission.place(tenant)
    endpoint = ModelEndpoint.objects.create(key=key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [intake_pid] = cursor.fetchone()
    params = connections["default"].get_connection_params()
    failures = []
    waited = []

    def worker() -> None:
        with psycopg.connect(**params) as other:
            other.execute(
                # As admission._line locks it.
                "SELECT id FROM conversations_modelendpoint WHERE id = %s FOR NO KEY UPDATE",
                [endpoint.pk],
            )
            ready.set()
            for _ in range(100):  # until the intake waits for a lock
                row = other.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [intake_pid]
                ).fetchone()
                if row and row[0] == "Lock":
                    waited.append(True)
                    break
                time.sleep(0.05)
            try:
                other.execute(
                    "INSERT INTO conversations_admission (message_id, endpoint_id, tenant_id, cap)"
                    " VALUES (%s, %s, %s, %s)",
                    [stored.pk, endpoint.pk, tenant.pk, cap + 1],  # told apart from enter's
                )
                other.commit()
            except psycopg.Error as exc:
                failures.append(exc)

    ready = threading.Event()
    thread = threading.Thread(target=worker)
    thread.start()
    assert ready.wait(5), "the worker did not lock the endpoint"
    try:
        admission.enter(stored, tenant)
    except DatabaseError as exc:
        failures.append(exc)
    thread.join(10)
    assert failures == []
    assert waited == [True]
    assert list(Admission.objects.values_list("message_id", "cap")) == [(stored.pk, cap + 1)]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row locks")
@pytest.mark.django_db(transaction=True)
def test_a_callback_does_not_wait_for_a_worker_deciding_turns(wecom_bot):
    # The intake lines its question up in the statement that stores it; the foreign key
    # check of its place in line reads the endpoint's row, which a worker deciding whose
    # turn it is holds for the whole admission.
    receive_question(wecom_bot, "the endpoint's first")  # its row made
    key = admission.place(wecom_bot.tenant)[0]
    holding, done, failures = threading.Event(), threading.Event(), []

    def worker() -> None:
        try:
            with transaction.atomic():
                admission._line(key)
                holding.set()
                done.wait(10)
        except DatabaseError as exc:
            failures.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    assert holding.wait(5), failures
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '2s'")
        try:
            stored = receive_question(wecom_bot, "while a worker decides")
        finally:
            cursor.execute("RESET lock_timeout")
            done.set()
            thread.join(10)
    assert failures == []
    assert Admission.objects.filter(pk=stored.pk, lease_until=None).exists()
