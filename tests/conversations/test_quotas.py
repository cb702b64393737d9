"""Counting questions and tokens against quotas (conversations/quotas.py), on a fixed clock."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from conversations import quotas
from conversations.models import QuotaUse
from tests.factories import BotFactory, ConversationFactory, MessageFactory, TenantFactory

pytestmark = pytest.mark.django_db

# 12:00 in Shanghai on 10 May; its day ends at 16:00 UTC, its month on 31 May 16:00 UTC.
NOON = datetime(2026, 5, 10, 4, 0, tzinfo=UTC)
SHANGHAI_MIDNIGHT = datetime(2026, 5, 10, 16, 0, tzinfo=UTC)


@pytest.fixture
def bot(db):
    return BotFactory(tenant=TenantFactory(slug="acme"))


def question(bot, sender="zhangsan", **fields):
    conversation = ConversationFactory(bot=bot, user_id=sender)
    return MessageFactory(conversation=conversation, sender=sender, status="answering", **fields)


def set_quotas(obj, **limits):
    for name, value in limits.items():
        setattr(obj, name, value)
    obj.save()


def admit_all(bot, count, now=NOON, sender="zhangsan"):
    return [quotas.admit(question(bot, sender), now) for _ in range(count)]


def use(tenant, scope, subject=""):
    return QuotaUse.objects.get(tenant=tenant, scope=scope, subject=subject)


def test_it_admits_up_to_the_limit_then_names_the_quota_and_when_it_resets(bot):
    set_quotas(bot.tenant, user_quota_messages_per_day=3)

    *admitted, refused = admit_all(bot, 4)

    assert admitted == [None, None, None]
    assert (refused.scope, refused.kind, refused.limit, refused.used) == ("user", "messages", 3, 3)
    assert refused.reason == "quota_messages_user"
    assert refused.resets_at == SHANGHAI_MIDNIGHT
    assert refused.resets_at.isoformat() == "2026-05-11T00:00:00+08:00"
    assert use(bot.tenant, "user", "zhangsan").messages == 3


def test_every_question_is_counted_for_its_person_bot_and_tenant_even_without_quotas(bot):
    admit_all(bot, 2)
    admit_all(bot, 1, sender="lisi")

    assert use(bot.tenant, "user", "zhangsan").messages == 2
    assert use(bot.tenant, "user", "lisi").messages == 1
    assert use(bot.tenant, "bot", str(bot.pk)).messages == 3
    assert use(bot.tenant, "tenant").messages == 3


@pytest.mark.parametrize("limit", [0, 10], ids=["no quota", "a quota"])
def test_a_question_claimed_again_is_counted_once(bot, limit):
    set_quotas(bot.tenant, quota_messages_per_day=limit)
    waiting = question(bot)

    assert [quotas.admit(waiting, NOON) for _ in range(3)] == [None, None, None]

    assert use(bot.tenant, "user", "zhangsan").messages == 1
    assert use(bot.tenant, "tenant").messages == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
def test_with_no_quota_set_a_question_is_counted_in_one_statement(bot):
    asked = question(bot)

    with CaptureQueriesContext(connection) as queries:
        assert quotas.admit(asked, NOON) is None

    assert len(queries) == 1
    assert use(bot.tenant, "bot", str(bot.pk)).messages == 1


def test_a_refused_question_counts_for_no_one(bot):
    set_quotas(bot.tenant, quota_messages_per_day=2)
    admit_all(bot, 2, sender="lisi")

    [refused] = admit_all(bot, 1)

    assert (refused.scope, refused.kind) == ("tenant", "messages")
    # Counted for the person and the bot first, then undone with the tenant's refusal.
    assert use(bot.tenant, "bot", str(bot.pk)).messages == 2
    assert not QuotaUse.objects.filter(scope="user", subject="zhangsan", messages__gt=0).exists()


def test_a_bots_quota_holds_that_bot_alone(bot):
    set_quotas(bot, quota_messages_per_day=1)
    other = BotFactory(tenant=bot.tenant)

    assert admit_all(bot, 2)[1].scope == "bot"
    assert admit_all(other, 2) == [None, None]


def test_tenants_never_share_a_count(bot):
    set_quotas(bot.tenant, user_quota_messages_per_day=1, quota_messages_per_day=1)
    elsewhere = BotFactory(tenant=TenantFactory(slug="globex"))
    set_quotas(elsewhere.tenant, user_quota_messages_per_day=1, quota_messages_per_day=1)

    assert admit_all(bot, 1) == [None]
    assert admit_all(elsewhere, 1) == [None]  # the same sender id, another tenant
    assert admit_all(bot, 1)[0] is not None


def test_the_day_starts_at_midnight_in_the_tenants_time_zone(bot):
    set_quotas(bot.tenant, user_quota_messages_per_day=1)
    admit_all(bot, 1)
    a_minute_before = SHANGHAI_MIDNIGHT - timedelta(minutes=1)

    assert admit_all(bot, 1, now=a_minute_before)[0] is not None
    assert admit_all(bot, 1, now=SHANGHAI_MIDNIGHT) == [None]
    assert use(bot.tenant, "user", "zhangsan").messages == 1  # the new day's first


def test_another_time_zone_moves_the_midnight(bot):
    set_quotas(bot.tenant, user_quota_messages_per_day=1, time_zone="America/New_York")
    admit_all(bot, 1)

    # Midnight in Shanghai is noon in New York: the same day there.
    [refused] = admit_all(bot, 1, now=SHANGHAI_MIDNIGHT)
    assert refused.resets_at.isoformat() == "2026-05-11T00:00:00-04:00"
    assert admit_all(bot, 1, now=datetime(2026, 5, 11, 4, 0, tzinfo=UTC)) == [None]


def test_a_time_zone_saved_past_the_validator_falls_back_to_the_servers(bot, settings):
    settings.TIME_ZONE = "UTC"
    set_quotas(bot.tenant, user_quota_messages_per_day=1, time_zone="Mars/Olympus_Mons")
    admit_all(bot, 1)

    [refused] = admit_all(bot, 1)

    assert refused.resets_at.isoformat() == "2026-05-11T00:00:00+00:00"


def spend(bot, prompt, completion, now=NOON, sender="zhangsan", estimated=False):
    answered = question(
        bot,
        sender,
        prompt_tokens=prompt,
        completion_tokens=completion,
        tokens_estimated=estimated,
    )
    quotas.spend(answered, now)


def test_an_answers_tokens_count_for_its_month_and_estimates_are_marked(bot):
    spend(bot, 30, 70)
    spend(bot, 10, 10, estimated=True)
    spend(bot, 5, 5, sender="lisi")

    person = use(bot.tenant, "user", "zhangsan")
    assert (person.tokens, person.estimated_tokens) == (120, 20)
    assert use(bot.tenant, "bot", str(bot.pk)).tokens == 130
    assert use(bot.tenant, "tenant").tokens == 130


def test_a_question_is_admitted_while_tokens_are_under_the_quota(bot):
    set_quotas(bot.tenant, user_quota_tokens_per_month=100)
    spend(bot, 40, 59)
    assert admit_all(bot, 1) == [None]  # 99 of 100: its answer may take it past

    spend(bot, 1, 50)

    [refused] = admit_all(bot, 1)
    assert (refused.kind, refused.limit, refused.used) == ("tokens", 100, 150)
    assert refused.resets_at.isoformat() == "2026-06-01T00:00:00+08:00"


def test_the_month_starts_over_at_the_first_in_the_tenants_time_zone(bot):
    set_quotas(bot.tenant, quota_tokens_per_month=100)
    spend(bot, 100, 0)
    end_of_may = datetime(2026, 5, 31, 15, 59, tzinfo=UTC)
    june_first = datetime(2026, 5, 31, 16, 0, tzinfo=UTC)  # 00:00 in Shanghai

    assert admit_all(bot, 1, now=end_of_may)[0].kind == "tokens"
    assert admit_all(bot, 1, now=june_first) == [None]
    spend(bot, 7, 0, now=june_first)
    assert use(bot.tenant, "tenant").tokens == 7


def test_the_person_is_told_once_per_period_and_kind(bot):
    set_quotas(bot.tenant, user_quota_messages_per_day=1, quota_tokens_per_month=10)
    admit_all(bot, 1)

    notices = [refusal.notify for refusal in admit_all(bot, 3)]
    assert notices == [True, False, False]

    tomorrow = NOON + timedelta(days=1)
    assert admit_all(bot, 1, now=tomorrow) == [None]
    assert admit_all(bot, 1, now=tomorrow)[0].notify is True  # a new day

    spend(bot, 10, 0, now=tomorrow, sender="lisi")  # the tenant's month is used up
    [by_tokens] = admit_all(bot, 1, now=tomorrow, sender="lisi")
    assert (by_tokens.kind, by_tokens.notify) == ("tokens", True)
    assert admit_all(bot, 1, now=tomorrow, sender="lisi")[0].notify is False
    # Each person learns it once.
    assert admit_all(bot, 1, now=tomorrow, sender="wangwu")[0].notify is True


def test_standings_show_use_against_quota_now(bot):
    set_quotas(bot.tenant, quota_messages_per_day=10, user_quota_tokens_per_month=500)
    admit_all(bot, 2)
    spend(bot, 40, 60, estimated=True)
    wanted = [quotas.of_tenant(bot.tenant), quotas.of_user(bot.tenant, "zhangsan")]

    tenant, person = quotas.standings(bot.tenant, wanted, NOON)

    assert tenant == quotas.Standing(2, 10, 100, 100, 0)
    assert person == quotas.Standing(2, 0, 100, 100, 500)
    tomorrow = quotas.standings(bot.tenant, wanted, NOON + timedelta(days=1))[0]
    assert (tomorrow.messages, tomorrow.tokens) == (0, 100)
    assert quotas.standings(bot.tenant, [quotas.of_user(bot.tenant, "nobody")], NOON) == [
        quotas.Standing(0, 0, 0, 0, 500)
    ]


@pytest.mark.django_db(transaction=True)
def test_twenty_admissions_at_once_on_twenty_connections_admit_exactly_five():
    bot = BotFactory(tenant=TenantFactory(slug="busy", user_quota_messages_per_day=5))
    questions = [question(bot) for _ in range(20)]
    barrier = threading.Barrier(len(questions))
    refusals = []

    def admit(row):
        barrier.wait()
        try:
            refusals.append(quotas.admit(row))
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=admit, args=(row,)) for row in questions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(refusal is None for refusal in refusals) == 5
    assert sum(refusal is not None and refusal.notify for refusal in refusals) == 1
    assert use(bot.tenant, "user", "zhangsan").messages == 5
