"""Retention: content past a tenant's retention is redacted or deleted, in bounded
batches, never under legal hold, and each run that purged something is in the audit trail."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone, translation
from rest_framework.test import APIClient

from channels_im.models import Bot
from conversations import retention, rollup
from conversations.context import build_messages
from conversations.models import BotDay, Conversation, Message, UserDay
from tenants.audit import Actor
from tenants.audit_models import AuditEvent
from tenants.audit_verify import verify_chain
from tenants.models import MIN_RETENTION_DAYS, Tenant
from tests.factories import BotFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

ROBOT = Actor.system("retention")
USER, ASSISTANT = Message.Role.USER, Message.Role.ASSISTANT
# What redaction keeps: everything usage, the dashboard and the log's filters read.
FIGURES = [
    *("tenant_id", "bot_id", "conversation_id", "reply_to_id", "role", "sender"),
    *("external_id", "status", "model", "done_reason", "created_at", "delivered_at"),
    *("attempts", "queue_wait_ms", "first_token_ms", "total_ms"),
    *("prompt_tokens", "completion_tokens", "tokens_estimated"),
]


def days_ago(days, hours=0):
    return timezone.now() - timedelta(days=days, hours=hours)


def before_noon(days, hours=0):
    """`hours` before noon, `days` days ago, in the tenants' zone (their default): rows
    made a few hours apart this way fall on one day at whatever hour the test runs."""
    noon = timezone.now().astimezone(ZoneInfo("Asia/Shanghai")) - timedelta(days=days)
    return noon.replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(hours=hours)


def exchange(conversation, created_at, *, status="answered", sender="zhangsan", n=0):
    """A question and its answer, created at `created_at` (the column is auto_now_add)."""
    question = MessageFactory(
        conversation=conversation,
        content=f"我的工资单在哪里？ {n}",
        sender=sender,
        status=status,
        error="model: HTTP 500 while answering 我的工资单" if status == "failed" else "",
        model="qwen2:1.5b",
        reply_context={"sender_nick": "张三", "session_webhook": "https://oapi.example/x"},
        queue_wait_ms=5,
        first_token_ms=300 + n,
        total_ms=2000 + n,
        prompt_tokens=40 + n,
        completion_tokens=90 + n,
    )
    answer = MessageFactory(
        conversation=conversation,
        role=ASSISTANT,
        reply_to=question,
        external_id=None,
        content="在人事系统里。",
        model="qwen2:1.5b",
    )
    rows = Message.objects.filter(pk__in=[question.pk, answer.pk])
    rows.update(created_at=created_at)
    Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=created_at)
    return question, answer


def retain(tenant, days=MIN_RETENTION_DAYS, action="redact", hold=False):
    Tenant.objects.filter(pk=tenant.pk).update(
        retention_days=days, retention_action=action, legal_hold=hold
    )
    tenant.refresh_from_db()
    return tenant


def figures(rows):
    return [tuple(getattr(row, name) for name in FIGURES) for row in rows]


@pytest.fixture
def bot(tenant_a):
    return BotFactory(tenant=tenant_a, name="helpdesk")


@pytest.fixture
def log(bot):
    """Tenant A: four exchanges three days old (one failed), two from an hour ago."""
    old = [exchange(ConversationFactory(bot=bot), before_noon(3, hours=n), n=n) for n in range(3)]
    old.append(exchange(ConversationFactory(bot=bot), before_noon(3), status="failed", n=3))
    recent = [exchange(ConversationFactory(bot=bot), days_ago(0, hours=1), n=n) for n in range(2)]
    return {"old": [row for pair in old for row in pair], "recent": [r for p in recent for r in p]}


def fresh(rows):
    return [Message.objects.get(pk=row.pk) for row in rows]


# --- redact --------------------------------------------------------------------------------


def test_redaction_clears_the_texts_of_old_rows_and_keeps_their_figures(tenant_a, log):
    before = figures(fresh(log["old"]))
    run = retention.purge(retain(tenant_a), actor=ROBOT)
    assert (run.messages, run.conversations) == (8, 0)
    for row in fresh(log["old"]):
        assert (row.content, row.error, row.reply_context) == ("", "", {})
        assert row.redacted_at is not None
        with translation.override("en"):
            assert str(row).endswith(": (redacted)")
    assert figures(fresh(log["old"])) == before
    for row, kept in zip(fresh(log["recent"]), log["recent"], strict=True):
        assert (row.content, row.reply_context, row.redacted_at) == (
            kept.content,
            kept.reply_context,
            None,
        )
    assert Conversation.objects.count() == 6


def test_redaction_leaves_usage_and_the_dashboard_as_they_were(tenant_a, log, key_for):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(tenant_a, 'logs:read')}")

    def usage():
        return {
            group: client.get("/api/v1/usage/", {"group_by": group}).json()
            for group in ("day", "bot", "user")
        }

    def dashboard():
        rollup.refresh(30)
        bot_days = BotDay.objects.values_list(
            "bot", "day", "status", "messages", "prompt_tokens", "completion_tokens", "histograms"
        )
        user_days = UserDay.objects.values_list("day", "sender", "messages", "tokens")
        return sorted(bot_days), sorted(user_days)

    used, shown = usage(), dashboard()
    assert used["day"]["results"][0]["messages"] == 4
    retention.purge(retain(tenant_a), actor=ROBOT)
    assert Message.objects.filter(redacted_at__isnull=False).count() == 8
    assert usage() == used
    assert dashboard() == shown


def test_redacted_rounds_leave_the_models_context(tenant_a, bot):
    conversation = ConversationFactory(bot=bot)
    exchange(conversation, days_ago(3), n=1)
    exchange(conversation, days_ago(0, hours=1), n=2)
    retention.purge(retain(tenant_a), actor=ROBOT)
    question = MessageFactory(conversation=conversation, content="还有呢？", status="queued")
    sent = [message["content"] for message in build_messages(question)]
    assert sent[1:] == ["我的工资单在哪里？ 2", "在人事系统里。", "还有呢？"]  # after the system


def test_rows_still_being_answered_are_left_for_a_later_night(tenant_a, bot):
    conversation = ConversationFactory(bot=bot)
    waiting, _ = exchange(conversation, days_ago(5), status="queued")
    answering, _ = exchange(conversation, days_ago(5), status="answering")
    run = retention.purge(retain(tenant_a), actor=ROBOT)
    assert run.messages == 2  # the two answers
    assert [row.redacted_at for row in fresh([waiting, answering])] == [None, None]


def test_a_bots_error_older_than_the_cutoff_loses_its_text_not_its_time(tenant_a, bot):
    stale = BotFactory(tenant=tenant_a, name="stale", last_error="model: 我的工资单 …")
    Bot.objects.filter(pk=stale.pk).update(last_error_at=days_ago(4))
    bot.record_error("delivery: HTTP 503")
    retention.purge(retain(tenant_a), actor=ROBOT)
    stale.refresh_from_db(), bot.refresh_from_db()
    assert (stale.last_error, stale.last_error_at is not None) == ("", True)
    assert bot.last_error == "delivery: HTTP 503"


# --- delete --------------------------------------------------------------------------------


def test_deletion_removes_old_rows_and_the_conversations_left_empty(tenant_a, bot, log):
    mixed = ConversationFactory(bot=bot)
    exchange(mixed, days_ago(4), n=7)
    kept = exchange(mixed, days_ago(0, hours=2), n=8)
    run = retention.purge(retain(tenant_a, action="delete"), actor=ROBOT)
    assert (run.messages, run.conversations) == (10, 4)
    remaining = set(Message.objects.values_list("pk", flat=True))
    assert remaining == {row.pk for row in [*log["recent"], *kept]}
    assert Conversation.objects.count() == 3 and Conversation.objects.filter(pk=mixed.pk).exists()


def test_a_deleted_question_takes_its_newer_answer_along(tenant_a, bot):
    question, answer = exchange(ConversationFactory(bot=bot), days_ago(3))
    Message.objects.filter(pk=answer.pk).update(created_at=days_ago(0, hours=1))
    run = retention.purge(retain(tenant_a, action="delete"), actor=ROBOT)
    assert run.messages == 2 and not Message.objects.exists()


def test_an_emptied_conversation_active_since_the_cutoff_stays(tenant_a, bot):
    conversation = ConversationFactory(bot=bot)
    exchange(conversation, days_ago(3))
    # A new message has just touched the session, and is yet to be stored.
    Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=timezone.now())
    run = retention.purge(retain(tenant_a, action="delete"), actor=ROBOT)
    assert (run.messages, run.conversations) == (2, 0)
    assert Conversation.objects.filter(pk=conversation.pk).exists()


# --- which tenants, and the legal hold -----------------------------------------------------


@pytest.mark.parametrize("action", ["redact", "delete"])
def test_nothing_of_a_tenant_under_legal_hold_is_purged(tenant_a, log, action):
    before = [(row.pk, row.content, row.redacted_at) for row in Message.objects.all()]
    held = retain(tenant_a, days=MIN_RETENTION_DAYS, action=action, hold=True)
    assert retention.purge_all(ROBOT) == []
    assert retention.purge(held, actor=ROBOT).messages == 0
    assert [(row.pk, row.content, row.redacted_at) for row in Message.objects.all()] == before
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PURGE).exists()


def test_a_hold_saved_during_a_purge_stops_it_before_its_next_batch(tenant_a, log):
    """The hold is set from inside the first batch's UPDATE, as if the operator saved it
    then: the batches after it see it."""
    tenant = retain(tenant_a)
    set_hold = []

    def operator_saves_a_hold(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith('UPDATE "conversations_message"') and not set_hold:
            set_hold.append(True)
            Tenant.objects.filter(pk=tenant.pk).update(legal_hold=True)
        return result

    with connection.execute_wrapper(operator_saves_a_hold):
        run = retention.purge(tenant, actor=ROBOT, batch_size=3)
    assert run.messages == 3
    assert Message.objects.filter(redacted_at__isnull=False).count() == 3


def test_a_retention_changed_during_a_purge_stops_it_too(tenant_a, log):
    tenant = retain(tenant_a)
    Tenant.objects.filter(pk=tenant.pk).update(retention_days=0)  # after the run read it
    assert retention.purge(tenant, actor=ROBOT).messages == 0


def test_only_tenants_with_a_retention_and_no_hold_are_purged(tenant_a, tenant_b, log):
    other = BotFactory(tenant=tenant_b, name="b")
    exchange(ConversationFactory(bot=other), days_ago(400))  # tenant B keeps everything
    retain(tenant_a)
    runs = retention.purge_all(ROBOT)
    assert [(run.tenant.slug, run.messages) for run in runs] == [("tenant-a", 8)]
    assert not Message.objects.filter(tenant=tenant_b, redacted_at__isnull=False).exists()


def test_the_cutoff_follows_each_tenants_days(tenant_a, bot):
    exchange(ConversationFactory(bot=bot), days_ago(9))
    exchange(ConversationFactory(bot=bot), days_ago(11))
    run = retention.purge(retain(tenant_a, days=10), actor=ROBOT)
    assert run.messages == 2
    assert abs(run.cutoff - days_ago(10)) < timedelta(minutes=1)


# --- batches -------------------------------------------------------------------------------


def ids_written(statement):
    """A recorder of how many message ids each UPDATE (or DELETE) of the log names."""
    counts = []
    table = '"conversations_message"'

    def record(execute, sql, params, many, context):
        if sql.startswith((f"{statement} {table}", f"{statement} FROM {table}")):
            counts.append(sql.split(" IN (", 1)[1].split(")", 1)[0].count("%s"))
        return execute(sql, params, many, context)

    return counts, record


@pytest.mark.parametrize(
    ("action", "statement", "most"),
    [("redact", "UPDATE", 3), ("delete", "DELETE", 6)],  # an answer goes with its question
)
def test_each_batch_writes_at_most_its_size(tenant_a, bot, action, statement, most):
    for n in range(10):
        exchange(ConversationFactory(bot=bot), days_ago(5, hours=n), n=n)
    counts, record = ids_written(statement)
    with connection.execute_wrapper(record):
        run = retention.purge(retain(tenant_a, action=action), actor=ROBOT, batch_size=3)
    assert run.messages == 20 and not Message.objects.filter(redacted_at__isnull=True).exists()
    assert sum(counts) == 20 and max(counts) <= most
    if action == "redact":
        assert len(counts) == 7  # ceil(20 / 3)


# --- the audit trail -----------------------------------------------------------------------


def test_each_run_that_purged_something_is_recorded_with_its_counts(tenant_a, log):
    run = retention.purge(retain(tenant_a, action="delete"), actor=ROBOT)
    event = AuditEvent.objects.get(action=AuditEvent.Action.PURGE)
    assert (event.tenant_id, event.actor_label, event.object_type) == (
        tenant_a.pk,
        "system: retention",
        "conversations.message",
    )
    detail = dict(event.detail)
    recorded_cutoff = datetime.fromisoformat(detail.pop("cutoff"))
    assert abs(recorded_cutoff - run.cutoff) < timedelta(milliseconds=1)
    assert detail == {"action": "delete", "messages": 8, "conversations": 4}
    assert verify_chain(tenant_a.pk).bad is None
    retention.purge(tenant_a, actor=ROBOT)  # nothing left: nothing recorded
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PURGE).count() == 1


def test_a_purge_cut_short_still_records_what_it_did(tenant_a, log):
    tenant = retain(tenant_a)
    batches = []

    def fail_the_third_batch(execute, sql, params, many, context):
        if sql.startswith('UPDATE "conversations_message"'):
            batches.append(sql)
            if len(batches) == 3:
                raise TimeoutError("soft time limit")
        return execute(sql, params, many, context)

    with pytest.raises(TimeoutError), connection.execute_wrapper(fail_the_third_batch):
        retention.purge(tenant, actor=ROBOT, batch_size=3)
    event = AuditEvent.objects.get(action=AuditEvent.Action.PURGE)
    assert event.detail["messages"] == 6


# --- the dashboard's history ---------------------------------------------------------------


def test_the_shortest_retention_never_reaches_the_days_the_beat_recomputes():
    first_recomputed = rollup.day_start(rollup.today() - timedelta(days=rollup.RECENT_DAYS - 1))
    # The latest cutoff of today's runs: one just before midnight.
    latest_cutoff = rollup.day_start(rollup.today() + timedelta(days=1)) - timedelta(
        days=MIN_RETENTION_DAYS
    )
    assert latest_cutoff <= first_recomputed


def test_recomputing_older_days_keeps_the_figures_of_days_retention_deleted(tenant_a, bot):
    for n in range(4):
        exchange(ConversationFactory(bot=bot), days_ago(n + 1), n=n)
    rollup.refresh(30)
    before = sorted(BotDay.objects.values_list("day", "messages", "prompt_tokens"))
    assert len(before) == 4
    retention.purge(retain(tenant_a, days=2, action="delete"), actor=ROBOT)
    assert Message.objects.filter(role=USER).count() == 1
    rollup.refresh(30)  # the refresh_dashboard command's backfill
    assert sorted(BotDay.objects.values_list("day", "messages", "prompt_tokens")) == before
