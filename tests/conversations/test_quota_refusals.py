"""Questions over a quota, through the reply pipeline against a fake Ollama and WeCom."""

import itertools

import pytest

from channels_im.platforms.base import InboundMessage
from conversations.models import Message, QuotaUse
from conversations.services import receive
from tests.scrape import scrape

pytestmark = pytest.mark.django_db

MESSAGE_IDS = itertools.count(1)


@pytest.fixture
def run(wecom_bot, fake_platforms, eager_celery, django_capture_on_commit_callbacks):
    """Receive a question as the callback would and run its tasks to the end."""

    def run_one(text="hello", sender="zhangsan"):
        inbound = InboundMessage(
            external_id=f"quota-{next(MESSAGE_IDS)}", sender=sender, chat=sender, text=text
        )
        with django_capture_on_commit_callbacks(execute=True):
            return receive(wecom_bot, inbound)

    return run_one


@pytest.fixture
def tenant(wecom_bot):
    return wecom_bot.tenant


def statuses():
    return list(Message.objects.filter(role="user").order_by("id").values_list("status", flat=True))


def test_over_the_quota_a_question_is_logged_unasked_and_the_person_told_once(
    run, tenant, fake_ollama, fake_platforms
):
    tenant.user_quota_messages_per_day = 2
    tenant.save()

    for n in range(4):
        run(f"q{n}")

    assert statuses() == ["answered", "answered", "quota_exceeded", "quota_exceeded"]
    assert len(fake_ollama.requests) == 2
    *answers, notice = fake_platforms.wecom_texts()
    assert len(answers) == 2
    assert notice.startswith("Your daily quota of 2 messages is used up. It starts again at ")
    assert notice.endswith(" 00:00 (Asia/Shanghai).")
    refused = Message.objects.filter(status="quota_exceeded").order_by("id")
    assert "over the user quota of 2 messages a day (2 used)" in refused[0].error
    assert refused[0].reply.content == notice
    assert not Message.objects.filter(reply_to=refused[1]).exists()


def test_the_notice_is_in_the_tenants_language_and_names_the_quota(
    run, tenant, fake_platforms, settings
):
    tenant.language, tenant.quota_messages_per_day = "zh-hans", 1
    tenant.save()
    run(sender="lisi")

    run(sender="zhangsan")

    notice = fake_platforms.wecom_texts()[-1]
    assert notice.startswith("贵单位每天 1 条消息的额度已用完")
    assert "（Asia/Shanghai）" in notice


def test_the_answers_tokens_are_counted_and_the_answer_that_crosses_the_quota_finishes(
    run, tenant, fake_ollama, fake_platforms
):
    tenant.user_quota_tokens_per_month = 10
    tenant.save()
    fake_ollama.reply = "A long answer that takes far more than ten tokens to write out."

    first = run()
    second = run()

    first.refresh_from_db()
    assert first.status == "answered" and first.reply.content == fake_ollama.reply
    spent = first.prompt_tokens + first.completion_tokens
    person = QuotaUse.objects.get(scope="user", subject="zhangsan")
    assert (person.tokens, person.estimated_tokens) == (spent, 0)
    second.refresh_from_db()
    assert second.status == "quota_exceeded"
    assert fake_platforms.wecom_texts()[-1].startswith("Your monthly quota of 10 tokens")
    assert len(fake_ollama.requests) == 1


def test_a_refusal_is_counted_in_the_metrics_with_its_reason(client, run, wecom_bot):
    wecom_bot.quota_messages_per_day = 1
    wecom_bot.save()
    before = scrape(client)

    run()
    run()

    change = scrape(client).since(before)
    reason = "quota_messages_bot"
    assert change.value("im_refused_messages_total", tenant="tenant-a", reason=reason) == 1
    assert change.value("im_messages_total", role="user", status="quota_exceeded") == 1


def test_commands_and_rate_limited_messages_never_use_the_quota(run, tenant):
    tenant.user_rate_limit_per_minute = 2
    tenant.save()

    run("/help")
    run("q1")
    run("q2")  # over the rate limit: /help counted there

    assert QuotaUse.objects.get(scope="user", subject="zhangsan").messages == 1


def test_a_retried_question_is_counted_once(run, tenant, fake_ollama):
    tenant.user_quota_messages_per_day = 1
    tenant.save()
    fake_ollama.fail_status, fake_ollama.fail_times = 503, 1  # the retry answers

    question = run()

    question.refresh_from_db()
    assert (question.status, question.attempts) == ("answered", 2)
    assert QuotaUse.objects.get(scope="user", subject="zhangsan").messages == 1
