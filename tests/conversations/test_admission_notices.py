"""What a waiting asker is told: where the question stands (in the live message, updated in
place, or once as a short message) and, once, that the model is loading."""

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from channels_im.platforms.api.adapter import live_key
from conversations import admission, pipeline
from conversations.claims import Claim, RetryLater
from conversations.models import Admission, Message, ModelEndpoint
from tests.factories import BotFactory, MessageFactory

pytestmark = pytest.mark.django_db

FEISHU = {
    "app_id": "cli_notice0001",
    "app_secret": "feishu-app-secret-value",
    "verification_token": "FeishuVerifyToken0001",
    "encrypt_key": "FeishuEncryptKey0001",
}


@pytest.fixture
def tenant(tenant_a, fake_ollama, fake_platforms):
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.max_concurrency = 1
    tenant_a.save()
    return tenant_a


@pytest.fixture
def wecom(tenant):
    return BotFactory(tenant=tenant, platform="wecom")


@pytest.fixture
def feishu(tenant):
    return BotFactory(tenant=tenant, platform="feishu", credentials=dict(FEISHU))


@pytest.fixture
def slot_taken(tenant):
    """The endpoint's one slot, held by another question's answer."""
    holder = MessageFactory(conversation__bot=BotFactory(tenant=tenant), status="queued")
    return admission.admit(Claim.take(holder.pk, Message.Role.USER), tenant.endpoint)


def asked(bot, waited=10.0, **fields):
    """A question that arrived `waited` seconds ago."""
    question = MessageFactory(conversation__bot=bot, status="queued", **fields)
    arrived = timezone.now() - timedelta(seconds=waited)
    Message.objects.filter(pk=question.pk).update(created_at=arrived)
    return question


def still_waiting(question) -> float:
    """Its worker checks on it: it is still not its turn. Returns the seconds until the
    next check."""
    with pytest.raises(RetryLater) as later:
        pipeline.answer(question.pk)
    return later.value.countdown


def due_again(question, told_ago=None):
    """Its next check is due now (its asker last told `told_ago` seconds ago)."""
    Message.objects.filter(pk=question.pk).update(claimed_until=timezone.now())
    if told_ago is not None:
        told = timezone.now() - timedelta(seconds=told_ago)
        Admission.objects.filter(pk=question.pk).update(notified_at=told)


def test_it_tells_nothing_before_the_question_has_waited_the_notice_time(
    wecom, slot_taken, fake_platforms, settings
):
    settings.IM_QUEUE_NOTICE_SECONDS = 5
    question = asked(wecom, waited=1)
    assert 3.5 < still_waiting(question) <= 4
    assert fake_platforms.messages("wecom") == []


def test_a_waiting_question_without_a_live_message_is_told_once(wecom, slot_taken, fake_platforms):
    question = asked(wecom)
    still_waiting(question)
    assert fake_platforms.wecom_texts() == ["Queued: 0 ahead of you"]
    due_again(question, told_ago=60)
    still_waiting(question)
    assert len(fake_platforms.messages("wecom")) == 1


def test_it_counts_the_questions_ahead_and_estimates_from_recent_answers(
    wecom, tenant, slot_taken, fake_platforms
):
    ModelEndpoint.objects.update(answer_seconds=8.0)
    first, second = asked(wecom, waited=12), asked(wecom, waited=11)
    third = asked(wecom)
    for question in (first, second, third):
        still_waiting(question)
    assert fake_platforms.wecom_texts()[-1] == "Queued: 2 ahead of you, about 25 s"


def test_it_says_it_in_the_tenant_s_language(wecom, tenant, slot_taken, fake_platforms):
    tenant.language = "zh-hans"
    tenant.save()
    ModelEndpoint.objects.update(answer_seconds=100.0)
    still_waiting(asked(wecom))
    assert fake_platforms.wecom_texts() == ["排队中，前面还有 0 个问题，预计 2 分钟"]


def card_texts(fake_platforms):
    created = [c for c in fake_platforms.messages("feishu_card") if c["op"] == "create"]
    puts = [c for c in fake_platforms.messages("feishu_card") if c["op"] == "content"]
    return created, [p["content"] for p in puts]


def test_a_live_card_shows_where_the_question_stands_then_the_answer_in_its_place(
    feishu,
    slot_taken,
    fake_ollama,
    fake_platforms,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    question = asked(feishu, reply_context={"message_id": "om_1"})
    still_waiting(question)
    [created], updates = card_texts(fake_platforms)
    assert created["card"]["body"]["elements"][0]["content"] == "Queued: 0 ahead of you"
    ModelEndpoint.objects.update(answer_seconds=3.0)
    due_again(question, told_ago=11)
    assert still_waiting(question) == pytest.approx(10, abs=0.5)  # said again in 10 s
    [_], updates = card_texts(fake_platforms)
    assert updates == ["Queued: 0 ahead of you, about 5 s"]  # the same card, updated

    with django_capture_on_commit_callbacks(execute=True):
        slot_taken.release()
    [_], updates = card_texts(fake_platforms)
    assert updates[-1] == fake_ollama.reply
    assert fake_platforms.feishu_chat() == [fake_ollama.reply]
    assert Message.objects.get(pk=question.pk).status == "answered"


def test_a_long_wait_is_said_again_less_often(feishu, slot_taken, fake_platforms):
    question = asked(feishu, reply_context={"message_id": "om_1"})
    still_waiting(question)
    ModelEndpoint.objects.update(answer_seconds=240.0)  # its answer in about 4 minutes
    due_again(question, told_ago=41)
    assert still_waiting(question) == pytest.approx(40, abs=0.5)  # a sixth of the wait
    [_], updates = card_texts(fake_platforms)
    assert updates == ["Queued: 0 ahead of you, about 4 min"]


def test_an_api_question_is_told_nothing_its_stream_carries_only_the_answer(tenant, slot_taken):
    bot = BotFactory(tenant=tenant, platform="api", credentials={})
    question = asked(bot)
    still_waiting(question)
    assert cache.get(live_key(f"q{question.pk}")) is None
    assert Admission.objects.get(pk=question.pk).notified_at is None


def test_no_notice_at_all_when_it_is_switched_off(wecom, slot_taken, fake_platforms, settings):
    settings.IM_QUEUE_NOTICE_SECONDS = 0
    still_waiting(asked(wecom))
    assert fake_platforms.messages("wecom") == []


# --- the model loading ------------------------------------------------------------------


@pytest.fixture
def cold_model(fake_ollama, settings):
    """The model is not in memory: the first request waits for it to load."""
    fake_ollama.loaded = set()
    fake_ollama.load_delay = 0.3
    settings.IM_SIGN_OF_LIFE_SECONDS = 0.1  # would fire during the load


def answer(question):
    pipeline.answer(question.pk)
    return Message.objects.get(pk=question.pk)


def test_the_asker_is_told_once_that_the_model_is_loading(
    wecom, cold_model, fake_ollama, fake_platforms
):
    loading = "The model is loading after a quiet spell; this answer takes a little longer."
    assert answer(asked(wecom, waited=0)).status == "answered"
    assert fake_platforms.wecom_texts() == [loading, fake_ollama.reply]  # and no "writing…"
    assert fake_ollama.loaded == {"qwen2:1.5b"}

    answer(asked(wecom, waited=0))  # loaded now
    assert fake_platforms.wecom_texts() == [loading, fake_ollama.reply, fake_ollama.reply]


def test_a_live_card_says_the_model_is_loading_until_the_answer_comes(
    feishu, cold_model, fake_ollama, fake_platforms
):
    answer(asked(feishu, waited=0, reply_context={"message_id": "om_1"}))
    [created], updates = card_texts(fake_platforms)
    assert created["card"]["body"]["elements"][0]["content"].startswith("The model is loading")
    assert updates[-1] == fake_ollama.reply


def test_an_endpoint_that_cannot_say_what_is_loaded_gets_no_notice(
    wecom, fake_ollama, fake_platforms, settings
):
    settings.IM_SIGN_OF_LIFE_SECONDS = 0
    fake_ollama.load_delay = 0.3  # `loaded` stays None: no /api/ps, as an older server
    answer(asked(wecom, waited=0))
    assert fake_platforms.wecom_texts() == [fake_ollama.reply]
    assert json.dumps(fake_ollama.requests).count("qwen2") == 1
