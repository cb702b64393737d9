"""/stop and a Feishu recall across processes: the callback is handled here, the answer is
written by a real worker process, and the stop travels through the cache they share
(files with the embedded default's SQLite, Redis when CACHE_URL names it). Each stop
must close the model request (the fake Ollama sees its client hang up) within a second."""

import time

import pytest
from django.conf import settings

from conversations.models import Message
from tests.callbacks import dingtalk, feishu, wecom, wecom_bot
from tests.e2e.worker import wait_for
from tests.factories import BotFactory, TenantFactory
from tests.shown import live_message

pytestmark = pytest.mark.e2e

LOCMEM = settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")
LONG_REPLY = " ".join(f"word{n}" for n in range(60))
FEISHU = {
    "app_id": "cli_e2estop000000001",
    "app_secret": "feishu-e2e-stop-secret",
    "verification_token": "FeishuE2EStopToken",
    "encrypt_key": "FeishuE2EStopKey",
    "bot_open_id": feishu.BOT_OPEN_ID,
}
CREDENTIALS = {
    "wecom_bot": wecom_bot.ROBOT_CREDENTIALS,
    "feishu": FEISHU,
    "dingtalk": {**dingtalk.DINGTALK_CREDENTIALS, "card_template_id": "tpl-e2e.schema"},
}
REQUESTS = {
    "wecom": wecom.message_request,
    "wecom_bot": wecom_bot.message_request,
    "feishu": feishu.message_request,
    "dingtalk": dingtalk.message_request,
}


@pytest.fixture
def worker(spawn_worker, request):
    """A worker sharing this process's cache: files unless the tests run on Redis."""
    if LOCMEM:
        return spawn_worker(CACHE_URL=request.getfixturevalue("shared_cache"))
    return spawn_worker()


@pytest.fixture
def bot_for(db, fake_ollama):
    tenant = TenantFactory(model="qwen2:1.5b", model_endpoint=fake_ollama.url)

    def make(platform: str):
        credentials = CREDENTIALS.get(platform)
        extra = {"credentials": dict(credentials)} if credentials else {}
        return BotFactory(tenant=tenant, platform=platform, **extra)

    return make


def send(client, bot, text: str, msg_id: str, **fields) -> Message:
    response = client.generic(**REQUESTS[bot.platform](bot, text, msg_id, **fields))
    assert response.status_code == 200, response.content
    return Message.objects.get(bot=bot, external_id=msg_id)


def stopped(question: Message, worker) -> Message:
    """The question once its worker has recorded it stopped."""
    return wait_for(
        lambda: Message.objects.filter(pk=question.pk, status="answered", stopped=True).first(),
        worker=worker,
    )


def test_a_stop_during_a_long_first_token_wait_closes_the_model_request_within_a_second(
    client, worker, bot_for, fake_ollama, fake_platforms
):
    bot = bot_for("wecom")
    fake_ollama.first_token_delay = 30
    question = send(client, bot, "write me an essay", "first-token-1")
    wait_for(lambda: fake_ollama.requests, worker=worker)  # the model has it, and is silent
    time.sleep(0.5)

    stop_sent = time.monotonic()
    send(client, bot, "/stop", "first-token-stop")

    assert fake_ollama.wait_for_disconnect(5).at - stop_sent < 1
    question = stopped(question, worker)
    assert question.done_reason == "stopped" and question.reply.content == "(stopped)"
    texts = wait_for(
        lambda: len(fake_platforms.wecom_texts()) == 2 and fake_platforms.wecom_texts()
    )
    assert sorted(texts) == ["(stopped)", "Stopped."]


@pytest.mark.parametrize("platform", ["wecom_bot", "feishu", "dingtalk"])
def test_a_stop_mid_stream_finishes_the_live_message_with_the_text_so_far(
    client, worker, bot_for, fake_ollama, fake_platforms, platform
):
    bot = bot_for(platform)
    fake_ollama.reply, fake_ollama.chunk_delay = LONG_REPLY, 0.15
    question = send(client, bot, "count slowly", f"{platform}-mid-1")
    wait_for(lambda: "live" in Message.objects.get(pk=question.pk).reply_context, worker=worker)

    stop_sent = time.monotonic()
    send(client, bot, "/stop", f"{platform}-mid-stop")

    assert fake_ollama.wait_for_disconnect(5).at - stop_sent < 1
    question = stopped(question, worker)
    text, finished = wait_for(
        lambda: (shown := live_message(bot, question, fake_platforms))[1] and shown,
        worker=worker,
    )
    partial = text.removesuffix(" (stopped)")
    assert finished and text.endswith(" (stopped)")
    assert partial and LONG_REPLY.startswith(partial) and len(partial) < len(LONG_REPLY)
    assert question.reply.content == text


def test_a_recalled_feishu_question_stops_its_answer_within_a_second(
    client, worker, bot_for, fake_ollama, fake_platforms
):
    bot = bot_for("feishu")
    fake_ollama.reply, fake_ollama.chunk_delay = LONG_REPLY, 0.15
    question = send(client, bot, "count slowly", "om_recalled_1")
    wait_for(lambda: "live" in Message.objects.get(pk=question.pk).reply_context, worker=worker)

    recalled = time.monotonic()
    response = client.generic(**feishu.recall_request(bot, "om_recalled_1"))
    assert (response.status_code, response.json()) == (200, {"msg": "success"})
    assert time.monotonic() - recalled < 0.5  # answered without waiting on the worker

    assert fake_ollama.wait_for_disconnect(5).at - recalled < 1
    question = stopped(question, worker)
    text, finished = wait_for(
        lambda: (shown := live_message(bot, question, fake_platforms))[1] and shown,
        worker=worker,
    )
    assert finished and text.endswith(" (stopped)") and len(text) < len(LONG_REPLY)


def test_another_persons_stop_leaves_my_answer_running(
    client, worker, bot_for, fake_ollama, fake_platforms
):
    bot = bot_for("dingtalk")
    bot.credentials = dict(dingtalk.DINGTALK_CREDENTIALS)  # no card: one message at the end
    bot.save()
    fake_ollama.reply, fake_ollama.chunk_delay = "one two three four five six", 0.2
    mine = send(client, bot, "count", "group-mine", group=True)
    wait_for(lambda: fake_ollama.requests, worker=worker)

    send(client, bot, "/stop", "group-bobs-stop", group=True, sender="bob")

    mine = wait_for(
        lambda: Message.objects.filter(pk=mine.pk, status="answered").first(), worker=worker
    )
    assert not mine.stopped and mine.reply.content == fake_ollama.reply
    assert fake_ollama.disconnects == []
    texts = wait_for(
        lambda: len(fake_platforms.dingtalk_texts()) == 2 and fake_platforms.dingtalk_texts()
    )
    assert "@bob\n\nNothing to stop: no answer is being written for you." in texts
