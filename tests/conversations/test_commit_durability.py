"""Which writes wait for the disk at commit (PostgreSQL's synchronous_commit): a question,
its claim, its answer, its outcome, and a question parked or woken in its model's line do;
the bookkeeping of model slots, quota counts and a queue notice's time does not
(common/postgresql.relaxed_commit).

What is read is the setting a transaction would commit with, not how it committed: a crash
cannot be staged here. "off" is relaxed; anything else is the server's own setting.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from channels_im.platforms.base import InboundMessage
from conversations import admission, quotas
from conversations.claims import RetryLater
from conversations.models import Admission, Message
from conversations.services import receive
from tests.conversations.lines import claim, question
from tests.factories import TenantFactory

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's setting"),
    pytest.mark.django_db(transaction=True),
]

# What a worker writes for the model slots and the quotas.
BOOKKEEPING = re.compile(
    r"^\s*(WITH first AS \(\s*UPDATE|INSERT INTO|UPDATE|DELETE FROM)\s+\"?"
    r"conversations_(admission|quotause|modelendpoint|message SET quota_counted)\b"
)
# A question's row and its answer's: stored, claimed, answered.
LASTING = re.compile(
    r"^\s*(INSERT INTO|UPDATE)\s+\"?conversations_message\"?\s+(\(|SET \"?(status|queue_wait_ms)\b)"
)
CLAIM = re.compile(r"^\s*UPDATE conversations_message\s+SET status = %s, claimed_until = %s")
QUESTION_ROW = re.compile(
    r'^\s*UPDATE\s+"?conversations_message"?\s+SET "?(status|claimed_until)\b'
)


@contextmanager
def commits_seen() -> Iterator[list[tuple[str, str]]]:
    """Each statement Django runs meanwhile, with the synchronous_commit in force once it
    ran: the one its transaction commits with, unless a later statement of the same
    transaction changes it. A statement Django runs on its own (autocommit) is given an
    explicit transaction, as PostgreSQL would give it an implicit one, so that the
    setting can be read before the commit: set_config's transaction-local value lasts
    until the end of either kind (PostgreSQL's manual, "set_config")."""
    seen: list[tuple[str, str]] = []

    def observe(execute, sql, params, many, context):
        raw = context["connection"].connection
        own = raw.autocommit
        if own:
            raw.execute("BEGIN")
        try:
            result = execute(sql, params, many, context)
        except Exception:
            if own:
                raw.execute("ROLLBACK")
            raise
        seen.append((sql, raw.execute("SHOW synchronous_commit").fetchone()[0]))
        if own:
            raw.execute("COMMIT")
        return result

    with connection.execute_wrapper(observe):
        yield seen


def writes(seen, kind):
    return [setting for sql, setting in seen if kind.match(sql)]


def test_a_question_its_claim_and_answer_last_while_slots_and_counts_do_not_wait(
    wecom_bot, fake_platforms, eager_celery
):
    with commits_seen() as seen:
        question = receive(wecom_bot, InboundMessage("m1", "zhangsan", "zhangsan", "hello"))

    question.refresh_from_db()
    assert question.status == Message.Status.ANSWERED, question.error
    claims = [n for n, (sql, _) in enumerate(seen) if CLAIM.match(sql)]
    assert claims, seen
    intake, worker = seen[: claims[0]], seen[claims[0] :]
    assert "off" not in {setting for _, setting in intake}, intake
    # Claimed, its answer stored, answered.
    lasting = writes(worker, LASTING)
    assert len(lasting) >= 3 and "off" not in lasting, worker
    # Counted, a slot taken, its lease written, given up.
    bookkeeping = writes(worker, BOOKKEEPING)
    assert len(bookkeeping) >= 3 and set(bookkeeping) == {"off"}, worker


def test_bookkeeping_in_a_callers_transaction_commits_as_the_callers_would(
    wecom_bot, fake_platforms, eager_celery
):
    question = receive(wecom_bot, InboundMessage("m1", "zhangsan", "zhangsan", "hello"))
    question.refresh_from_db()
    question.completion_tokens = 7

    with commits_seen() as seen, transaction.atomic():
        quotas.spend(question)
    spent = writes(seen, BOOKKEEPING)
    assert spent and "off" not in spent, seen

    with commits_seen() as seen:
        quotas.spend(question)
    assert writes(seen, BOOKKEEPING) == ["off"], seen


def test_a_queue_notices_time_commits_as_the_callers_would(wecom_bot):
    waiting = receive(wecom_bot, InboundMessage("m1", "zhangsan", "zhangsan", "hello"))
    told = timezone.now()

    with commits_seen() as seen:
        admission.notified(waiting.pk, told)
    assert writes(seen, BOOKKEEPING) == ["off"], seen

    with commits_seen() as seen, transaction.atomic():
        admission.notified(waiting.pk, told + timedelta(seconds=1))
    noted = writes(seen, BOOKKEEPING)
    assert noted and "off" not in noted, seen
    assert Admission.objects.get(pk=waiting.pk).notified_at == told + timedelta(seconds=1)


def parked_behind(tenant):
    """A slot held at a one-slot endpoint, and a question parked behind it: (the slot's
    Lease, what park ran)."""
    held = admission.admit(claim(question(tenant)), tenant.endpoint)
    waiting_claim = claim(question(tenant, attempts=0))
    waiting = admission.admit(waiting_claim, tenant.endpoint)
    wake = timezone.now() + timedelta(minutes=1)
    with commits_seen() as parked, pytest.raises(RetryLater):
        admission.park(waiting_claim, tenant.endpoint, waiting, wake)
    return held, waiting_claim.row, parked


def lasting_question_rows(seen):
    """The question's row is written, in a transaction that waits for the disk."""
    question_rows = writes(seen, QUESTION_ROW)
    assert question_rows and "off" not in question_rows, seen
    assert seen[-1][1] != "off", seen


def test_a_question_parked_in_line_and_woken_when_a_slot_frees_lasts(woken):
    held, parked_row, parked = parked_behind(TenantFactory(max_concurrency=1))
    with commits_seen() as released:
        held.release()

    assert woken == [parked_row.pk]
    for seen in (parked, released):
        lasting_question_rows(seen)  # parked, then due now


def test_a_parked_question_woken_by_a_newer_ones_admission_lasts(woken):
    """The slot's lease ran out (its worker died): the next to ask for a slot grants it to
    the question parked first, in its own otherwise relaxed transaction."""
    tenant = TenantFactory(max_concurrency=1)
    held, parked_row, _ = parked_behind(tenant)
    Admission.objects.filter(pk=held.message_id).update(lease_until=timezone.now())
    with commits_seen() as seen:
        newer = admission.admit(claim(question(tenant)), tenant.endpoint)

    assert woken == [parked_row.pk] and not isinstance(newer, admission.Lease)
    lasting_question_rows(seen)
