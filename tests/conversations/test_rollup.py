"""The dashboard's rollup: its figures agree with the log they are recomputed from."""

import bisect
import random
from collections import defaultdict
from datetime import datetime, time, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from conversations import rollup
from conversations.models import BotDay, Message, UserDay
from conversations.tasks import refresh_dashboard
from tests.factories import BotFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

STATUSES = [choice for choice, _ in Message.Status.choices]


def local(day_offset, hour, minute=0):
    """An aware time `day_offset` days from today, at hour:minute in TIME_ZONE."""
    day = rollup.today() + timedelta(days=day_offset)
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def ask(bot, created_at, *, status="answered", sender="zhangsan", **figures):
    """A question of `bot` asked at `created_at` (the column is auto_now_add: set after)."""
    question = MessageFactory(
        conversation=ConversationFactory(bot=bot), status=status, sender=sender, **figures
    )
    Message.objects.filter(pk=question.pk).update(created_at=created_at)
    return question


@pytest.fixture
def bots(tenant_a, tenant_b):
    return [
        BotFactory(tenant=tenant_a, name="a-1"),
        BotFactory(tenant=tenant_a, name="a-2"),
        BotFactory(tenant=tenant_b, name="b-1"),
    ]


def random_log(bots, count=240, seed=7):
    """Questions over the last three days (local midnight included), with answers."""
    rng = random.Random(seed)
    for n in range(count):
        when = local(-rng.randrange(3), 0) + timedelta(minutes=rng.randrange(24 * 60))
        answered = rng.random() < 0.7
        question = ask(
            rng.choice(bots),
            when,
            status="answered" if answered else rng.choice(STATUSES),
            sender=f"user-{rng.randrange(12)}",
            total_ms=rng.randrange(100, 90_000) if answered else None,
            first_token_ms=rng.randrange(20, 8_000) if answered else None,
            prompt_tokens=rng.randrange(0, 900) if rng.random() < 0.9 else None,
            completion_tokens=rng.randrange(0, 400),
        )
        if n % 3 == 0:  # answers are not questions: never counted
            MessageFactory(
                conversation=question.conversation,
                role="assistant",
                reply_to=question,
                external_id=None,
                prompt_tokens=10_000,
            )


def direct_figures():
    """(bot, day, status) → [questions, prompt tokens, completion tokens], from the log."""
    figures = defaultdict(lambda: [0, 0, 0])
    for bot_id, created_at, status, prompt, completion in Message.objects.filter(
        role="user"
    ).values_list("bot_id", "created_at", "status", "prompt_tokens", "completion_tokens"):
        row = figures[bot_id, timezone.localtime(created_at).date(), status]
        row[0] += 1
        row[1] += prompt or 0
        row[2] += completion or 0
    return dict(figures)


def test_it_counts_what_a_direct_aggregate_over_the_log_counts(bots):
    random_log(bots)

    rollup.refresh(days=3)

    stored = {
        (r.bot_id, r.day, r.status): [r.messages, r.prompt_tokens, r.completion_tokens]
        for r in BotDay.objects.all()
    }
    assert stored == direct_figures()
    for row in BotDay.objects.all():
        assert row.tenant_id == row.bot.tenant_id
        timed = Message.objects.filter(
            bot=row.bot, status=row.status, role="user", total_ms__isnull=False
        )
        on_day = [m for m in timed if timezone.localtime(m.created_at).date() == row.day]
        assert sum(row.histograms["total_ms"]) == len(on_day)


def test_it_splits_days_at_midnight_in_the_servers_time_zone(bots):
    ask(bots[0], local(-1, 23, 59))
    ask(bots[0], local(0, 0, 1))
    ask(bots[0], local(0, 0, 2))

    rollup.refresh()

    days = dict(BotDay.objects.values_list("day", "messages"))
    assert days == {rollup.today() - timedelta(days=1): 1, rollup.today(): 2}


def test_it_reads_percentiles_from_the_buckets_within_one_bucket(bots):
    rng = random.Random(3)
    times = [int(rng.lognormvariate(8, 0.9)) for _ in range(400)]  # median about 3 s
    for ms in times:
        ask(bots[0], local(0, 0) + timedelta(seconds=1), total_ms=ms, first_token_ms=ms // 4)

    rollup.refresh()

    row = BotDay.objects.get()
    for fraction in (0.5, 0.9, 0.95, 0.99):
        exact = sorted(times)[round(fraction * len(times)) - 1]
        estimate = rollup.percentile(row.histograms["total_ms"], fraction)
        assert abs(bucket(estimate) - bucket(exact)) <= 1, (fraction, exact, estimate)
        first = sorted(t // 4 for t in times)[round(fraction * len(times)) - 1]
        estimate = rollup.percentile(row.histograms["first_token_ms"], fraction)
        assert abs(bucket(estimate) - bucket(first)) <= 1, (fraction, first, estimate)


def bucket(ms):
    return bisect.bisect_right(rollup.EDGES_MS, ms)


def test_a_percentile_of_nothing_is_none_and_beyond_the_last_edge_says_at_least():
    assert rollup.percentile([], 0.5) is None
    assert rollup.percentile([0] * (len(rollup.EDGES_MS) + 1), 0.5) is None
    beyond = [0] * len(rollup.EDGES_MS) + [5]
    assert rollup.percentile(beyond, 0.95) == rollup.EDGES_MS[-1]


def test_it_follows_a_status_change_and_drops_emptied_groups(bots):
    question = ask(bots[0], local(0, 0, 5), status="answering")
    rollup.refresh()
    assert list(BotDay.objects.values_list("status", "messages")) == [("answering", 1)]

    Message.objects.filter(pk=question.pk).update(status="failed")
    rollup.refresh()
    rollup.refresh()  # idempotent

    assert list(BotDay.objects.values_list("status", "messages")) == [("failed", 1)]


def test_the_beat_leaves_older_days_alone(bots):
    """Retention may purge old messages: their figures stay."""
    old = ask(bots[0], local(-5, 12))
    ask(bots[0], local(0, 0, 5))
    call_command("refresh_dashboard", days=30)
    old.delete()

    assert refresh_dashboard() == 2  # today's BotDay and UserDay

    assert sorted(BotDay.objects.values_list("day", flat=True)) == [
        rollup.today() - timedelta(days=5),
        rollup.today(),
    ]


def test_it_keeps_only_the_busiest_people_of_each_tenant_and_day(bots, monkeypatch):
    monkeypatch.setattr(rollup, "USERS_PER_DAY", 2)
    for sender, count in {"ann": 3, "bob": 1, "cid": 5, "dan": 2}.items():
        for _ in range(count):
            ask(bots[0], local(0, 0, 5), sender=sender, prompt_tokens=10, completion_tokens=5)
    ask(bots[2], local(0, 0, 5), sender="eve")  # another tenant keeps its own

    rollup.refresh()

    kept = {(r.tenant.slug, r.sender): (r.messages, r.tokens) for r in UserDay.objects.all()}
    assert kept == {
        ("tenant-a", "cid"): (5, 75),
        ("tenant-a", "ann"): (3, 45),
        ("tenant-b", "eve"): (1, 0),
    }


def test_the_refresh_is_scheduled_on_the_beat(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["refresh-dashboard"]
    assert entry["task"] == refresh_dashboard.name
    assert entry["options"]["expires"] < entry["schedule"].total_seconds()


def test_the_command_refuses_a_days_count_below_one():
    with pytest.raises(CommandError, match="--days"):
        call_command("refresh_dashboard", days=0)
