"""Claims: which rows a worker may take, and that only one worker takes each."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from conversations.claims import Claim, stuck
from conversations.models import Message
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db

QUEUED, ANSWERING, ANSWERED = (
    Message.Status.QUEUED,
    Message.Status.ANSWERING,
    Message.Status.ANSWERED,
)


def row(status=QUEUED, claim_ends_in=None, created_at=None, **fields):
    """A user message; `claim_ends_in` seconds from now (negative: in the past)."""
    ends = None if claim_ends_in is None else timezone.now() + timedelta(seconds=claim_ends_in)
    message = MessageFactory(status=status, claimed_until=ends, **fields)
    if created_at:  # auto_now_add ignores a value given at creation
        Message.objects.filter(pk=message.pk).update(created_at=created_at)
        message.refresh_from_db()
    return message


def ago(seconds):
    return timezone.now() - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("status", "claim_ends_in"),
    [
        (QUEUED, None),  # new
        (QUEUED, -1),  # its backoff has passed
        (ANSWERING, -1),  # its worker died and the claim ran out
    ],
)
def test_it_takes_a_row_nobody_owns(status, claim_ends_in, settings):
    message = row(status, claim_ends_in, attempts=1)
    taken = Claim.take(message.pk, Message.Role.USER).row
    assert taken.pk == message.pk
    assert taken.status == ANSWERING and taken.attempts == 2
    seconds_left = (taken.claimed_until - timezone.now()).total_seconds()
    assert settings.IM_CLAIM_SECONDS - 5 < seconds_left <= settings.IM_CLAIM_SECONDS
    assert taken.bot == message.bot and taken.tenant == message.tenant
    message.refresh_from_db()
    assert (message.status, message.attempts) == (ANSWERING, 2)


@pytest.mark.parametrize(
    ("status", "claim_ends_in"),
    [
        (QUEUED, 30),  # waiting out a backoff
        (ANSWERING, 30),  # a live worker owns it
        (ANSWERED, None),
        (Message.Status.FAILED, None),
        (Message.Status.RATE_LIMITED, None),
    ],
)
def test_it_leaves_a_row_that_is_owned_due_later_or_done(status, claim_ends_in):
    message = row(status, claim_ends_in)
    assert Claim.take(message.pk, Message.Role.USER) is None
    message.refresh_from_db()
    assert message.status == status and message.attempts == 0


def test_it_takes_only_rows_of_the_role_asked_for():
    message = row()
    assert Claim.take(message.pk, Message.Role.ASSISTANT) is None
    assert Claim.take(message.pk, Message.Role.USER) is not None


def test_the_second_claim_of_a_row_takes_nothing():
    message = row()
    assert Claim.take(message.pk, Message.Role.USER) is not None
    assert Claim.take(message.pk, Message.Role.USER) is None


def test_the_queue_wait_is_measured_at_the_first_claim_and_written_with_the_outcome():
    message = row(created_at=ago(3))
    taken = Claim.take(message.pk, Message.Role.USER)
    assert 3000 <= taken.row.queue_wait_ms < 4000
    taken.record(status=ANSWERED, claimed_until=None)
    message.refresh_from_db()
    assert message.queue_wait_ms == taken.row.queue_wait_ms and message.status == ANSWERED


@pytest.mark.django_db(transaction=True)
def test_of_many_workers_claiming_one_row_at_once_exactly_one_takes_it():
    message = row()
    start, winners = threading.Barrier(8), []

    def worker():
        start.wait()
        try:
            if Claim.take(message.pk, Message.Role.USER) is not None:
                winners.append(threading.get_ident())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    message.refresh_from_db()
    assert message.attempts == 1


def test_the_sweep_finds_what_a_claim_would_take(settings):
    settings.IM_STUCK_AFTER_SECONDS = 60
    old = ago(120)
    lost = row(created_at=old)
    dead_worker = row(ANSWERING, -1, created_at=old)
    owned = row(ANSWERING, 30, created_at=old)
    row(created_at=ago(1))  # too young to be stuck
    assert sorted(pk for pk, _ in stuck()) == sorted([lost.pk, dead_worker.pk])
    for message in (lost, dead_worker):
        assert Claim.take(message.pk, Message.Role.USER) is not None
    assert Claim.take(owned.pk, Message.Role.USER) is None
