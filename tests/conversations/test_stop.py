"""/stop and a recalled question, in one process: the web's side through real callbacks, the
worker's side by running the pipeline here while another thread signals the stop (the
cross-process path with a real worker is tests/e2e/test_stop.py)."""

import threading
import time

import pytest
from rest_framework.test import APIClient

from conversations import pipeline, stop_signal
from conversations.models import Admission, Message
from conversations.tasks import generate_reply
from tests.callbacks import feishu, wecom, wecom_bot
from tests.callbacks.dingtalk import DINGTALK_CREDENTIALS
from tests.callbacks.dingtalk import message_request as dingtalk_request
from tests.factories import BotFactory
from tests.scrape import scrape
from tests.shown import live_message

pytestmark = pytest.mark.django_db

LONG_REPLY = " ".join(f"word{n}" for n in range(40))
FEISHU = {
    "app_id": "cli_stop000000000001",
    "app_secret": "feishu-stop-secret",
    "verification_token": "FeishuStopVerifyToken",
    "encrypt_key": "FeishuStopEncryptKey",
    "bot_open_id": feishu.BOT_OPEN_ID,
}
REQUESTS = {
    "wecom": lambda bot, text, msg_id: wecom.message_request(bot, text, msg_id),
    "wecom_bot": lambda bot, text, msg_id: wecom_bot.message_request(bot, text, msg_id),
    "feishu": lambda bot, text, msg_id: feishu.message_request(bot, text, msg_id),
    "dingtalk": lambda bot, text, msg_id: dingtalk_request(bot, text, msg_id),
}
CREDENTIALS = {
    "wecom_bot": wecom_bot.ROBOT_CREDENTIALS,
    "feishu": FEISHU,
    "dingtalk": {**DINGTALK_CREDENTIALS, "card_template_id": "tpl-stop.schema"},
}


@pytest.fixture
def bot_for(tenant_a, fake_ollama, fake_platforms, eager_celery):
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.save()

    def make(platform: str):
        credentials = dict(CREDENTIALS[platform]) if platform in CREDENTIALS else None
        extra = {"credentials": credentials} if credentials else {}
        return BotFactory(tenant=tenant_a, platform=platform, **extra)

    return make


@pytest.fixture
def say(client, django_capture_on_commit_callbacks):
    """Send `text` to `bot` as its platform would; with `run`, what it enqueues runs here
    (eagerly), else a question stays queued. Returns the message's row."""
    counter = iter(range(10_000))

    def send(bot, text, *, run=True):
        msg_id = f"stop-{next(counter)}"
        request = REQUESTS[bot.platform](bot, text, msg_id)
        with django_capture_on_commit_callbacks(execute=run):
            response = client.generic(**request)
        assert response.status_code == 200, response.content
        return Message.objects.get(bot=bot, external_id=msg_id)

    return send


def answer_and_stop_after(question: Message, seconds: float) -> float:
    """Answer `question` here while a /stop's signal comes from another thread after
    `seconds`; returns how long the answer took after that signal."""
    signalled = []

    def signal():
        signalled.append(time.monotonic())
        stop_signal.request(question.pk, stop_signal.COMMAND)

    threading.Timer(seconds, signal).start()
    pipeline.answer(question.pk)
    return time.monotonic() - signalled[0]


def test_stop_with_nothing_in_flight_says_so(bot_for, say, client, fake_platforms):
    bot = bot_for("wecom")
    before = scrape(client)

    stop = say(bot, "/stop")

    assert stop.status == Message.Status.IGNORED
    assert fake_platforms.wecom_texts() == ["Nothing to stop: no answer is being written for you."]
    counted = scrape(client).since(before)
    assert counted.value("im_stops_total", how="command", found="nothing") == 1


def test_help_lists_stop(bot_for, say, fake_platforms):
    say(bot_for("wecom"), "/help")
    [text] = fake_platforms.wecom_texts()
    assert "/stop (停止)" in text


@pytest.mark.parametrize("command", ["/stop", "停止", "/停止", "/STOP now"])
def test_a_queued_question_is_stopped_before_the_model_is_asked(
    bot_for, say, client, fake_ollama, fake_platforms, command
):
    bot = bot_for("wecom")
    question = say(bot, "a long essay, please", run=False)

    before = scrape(client)
    say(bot, command)

    assert scrape(client).since(before).value("im_stops_total", how="command", found="queued") == 1
    question.refresh_from_db()
    assert (question.status, question.stopped, question.done_reason) == (
        Message.Status.ANSWERED,
        True,
        "stopped",
    )
    assert question.reply.content == "(stopped)"
    assert fake_platforms.wecom_texts() == ["(stopped)", "Stopped."]
    generate_reply(question.pk)  # its task, arriving late, finds nothing to do
    assert fake_ollama.requests == []


def test_a_stop_speaks_the_tenants_language(bot_for, say, fake_platforms):
    bot = bot_for("wecom")
    bot.tenant.language = "zh-hans"
    bot.tenant.save()
    say(bot, "写一篇长文", run=False)

    say(bot, "停止")

    assert fake_platforms.wecom_texts() == ["（已停止）", "已停止。"]


def test_a_question_waiting_for_a_retry_is_stopped_when_a_worker_takes_it(
    bot_for, say, fake_ollama, fake_platforms
):
    bot = bot_for("wecom")
    question = say(bot, "hello", run=False)
    # An earlier attempt failed: the row waits, queued, until its retry is due; the model
    # slot went with that attempt.
    due = question.created_at.replace(year=question.created_at.year + 1)
    Message.objects.filter(pk=question.pk).update(claimed_until=due, attempts=1)
    Admission.objects.filter(pk=question.pk).delete()

    say(bot, "/stop")
    assert Message.objects.get(pk=question.pk).status == Message.Status.QUEUED
    Message.objects.filter(pk=question.pk).update(claimed_until=None)
    pipeline.answer(question.pk)

    question.refresh_from_db()
    assert (question.status, question.stopped) == (Message.Status.ANSWERED, True)
    assert (question.prompt_tokens, question.completion_tokens) == (0, 0)  # never asked
    assert fake_ollama.requests == []
    assert fake_platforms.wecom_texts() == ["Stopped.", "(stopped)"]


def test_another_persons_stop_leaves_my_answer_alone(bot_for, say, client, fake_platforms):
    bot = bot_for("wecom_bot")
    bot.shared_group_session = True  # even with one conversation for the whole group
    bot.save()
    mine = say(bot, "summarise the meeting", run=False)
    request = wecom_bot.message_request(bot, "/stop", "bob-stop", sender="bob")
    client.generic(**request)

    mine.refresh_from_db()
    assert mine.status == Message.Status.QUEUED and not mine.stopped
    bobs = Message.objects.get(external_id="bob-stop")
    assert bobs.conversation_id == mine.conversation_id
    assert bobs.reply.content == "Nothing to stop: no answer is being written for you."


def test_a_stop_in_another_chat_leaves_the_answer_alone(bot_for, say, client):
    bot = bot_for("dingtalk")
    in_group = dingtalk_request(bot, "summarise the meeting", "in-group", group=True)
    client.generic(**in_group)
    say(bot, "/stop")  # the same person, in their single chat with the bot

    assert Message.objects.get(external_id="in-group").status == Message.Status.QUEUED


def test_a_stop_during_the_first_token_wait_closes_the_model_request_at_once(
    bot_for, say, fake_ollama, fake_platforms, django_capture_on_commit_callbacks
):
    fake_ollama.first_token_delay = 30
    question = say(bot_for("wecom"), "think hard", run=False)

    with django_capture_on_commit_callbacks(execute=True):
        after_signal = answer_and_stop_after(question, 0.3)

    assert after_signal < 1
    [hung_up] = fake_ollama.disconnects
    assert hung_up.body["messages"][-1]["content"] == "think hard"
    question.refresh_from_db()
    assert (question.status, question.stopped, question.error) == ("answered", True, "")
    assert question.tokens_estimated  # the model read the prompt, and reported nothing
    assert fake_platforms.wecom_texts() == ["(stopped)"]


def test_a_stop_mid_stream_sends_the_text_so_far_where_nothing_shows_it_live(
    bot_for, say, fake_ollama, fake_platforms
):
    fake_ollama.reply, fake_ollama.chunk_delay = LONG_REPLY, 0.1
    question = say(bot_for("wecom"), "count", run=False)

    assert answer_and_stop_after(question, 0.5) < 1

    [sent] = fake_platforms.wecom_texts()
    partial = sent.removesuffix(" (stopped)")
    assert sent.endswith(" (stopped)") and partial
    assert LONG_REPLY.startswith(partial) and len(partial) < len(LONG_REPLY)
    assert Message.objects.get(pk=question.pk).reply.content == sent
    assert fake_ollama.wait_for_disconnect(1)


@pytest.mark.parametrize("platform", ["feishu", "dingtalk", "wecom_bot"])
def test_a_stop_mid_stream_finishes_the_live_message_with_the_text_so_far(
    bot_for, say, fake_ollama, fake_platforms, platform
):
    bot = bot_for(platform)
    fake_ollama.reply, fake_ollama.chunk_delay = LONG_REPLY, 0.1
    question = say(bot, "count", run=False)

    assert answer_and_stop_after(question, 0.6) < 1

    text, finished = live_message(bot, Message.objects.get(pk=question.pk), fake_platforms)
    partial = text.removesuffix(" (stopped)")
    assert finished and text.endswith(" (stopped)")
    assert partial and LONG_REPLY.startswith(partial) and len(partial) < len(LONG_REPLY)
    assert fake_ollama.wait_for_disconnect(1)


def test_the_answer_finishes_when_no_stop_comes(bot_for, say, fake_ollama, fake_platforms):
    fake_ollama.reply, fake_ollama.chunk_delay = "one two three", 0.25
    question = say(bot_for("wecom"), "count", run=False)

    pipeline.answer(question.pk)  # long enough for several of the watcher's polls

    question.refresh_from_db()
    assert (question.status, question.stopped, question.done_reason) == ("answered", False, "stop")
    assert fake_platforms.wecom_texts() == ["one two three"]
    assert fake_ollama.disconnects == []


class TestFeishuRecall:
    def test_a_recalled_queued_question_is_stopped_and_gets_no_answer(
        self, bot_for, say, client, fake_ollama, fake_platforms
    ):
        bot = bot_for("feishu")
        question = say(bot, "VPN 连不上", run=False)

        before = scrape(client)
        started = time.perf_counter()
        response = client.generic(**feishu.recall_request(bot, question.external_id))
        took = time.perf_counter() - started

        assert (response.status_code, response.json()) == (200, {"msg": "success"})
        assert took < 0.5  # Feishu wants its answer within 3 s; nothing here waits
        counted = scrape(client).since(before)
        assert counted.value("im_callbacks_total", platform="feishu", outcome="recalled") == 1
        assert counted.value("im_stops_total", how="recall", found="queued") == 1
        question.refresh_from_db()
        assert (question.status, question.stopped) == (Message.Status.ANSWERED, True)
        assert not Message.objects.filter(reply_to=question).exists()
        generate_reply(question.pk)
        assert fake_ollama.requests == [] and fake_platforms.feishu_chat() == []

    def test_a_recalled_question_being_answered_is_signalled(self, bot_for, say, client):
        bot = bot_for("feishu")
        question = say(bot, "VPN 连不上", run=False)
        Message.objects.filter(pk=question.pk).update(
            status=Message.Status.ANSWERING, claimed_until=question.created_at.replace(year=3000)
        )

        client.generic(**feishu.recall_request(bot, question.external_id))

        watch = stop_signal.Watch(question.pk)
        with watch:
            assert watch.hangup.requested and watch.how == stop_signal.RECALL

    def test_one_thread_per_process_watches_every_answer_in_it(self, bot_for, say):
        bot = bot_for("feishu")
        first, second = (say(bot, text, run=False) for text in ("one", "two"))
        with stop_signal.Watch(first.pk) as one, stop_signal.Watch(second.pk) as two:
            watching = [t for t in threading.enumerate() if t.name.startswith("stop-watch")]
            assert len(watching) == 1
            stop_signal.request(second.pk, stop_signal.COMMAND)
            deadline = time.monotonic() + 5 * stop_signal.POLL_SECONDS
            while not two.hangup.requested and time.monotonic() < deadline:
                time.sleep(0.05)
            assert two.how == stop_signal.COMMAND and not one.hangup.requested

    def test_a_recalled_question_whose_card_shows_text_is_finished_like_a_stop(
        self, bot_for, say, fake_ollama, fake_platforms
    ):
        bot = bot_for("feishu")
        fake_ollama.reply, fake_ollama.chunk_delay = LONG_REPLY, 0.1
        question = say(bot, "count", run=False)
        threading.Timer(0.6, stop_signal.request, (question.pk, stop_signal.RECALL)).start()

        pipeline.answer(question.pk)

        text, finished = live_message(bot, question, fake_platforms)
        assert finished and text.endswith(" (stopped)") and len(text) > len(" (stopped)")

    def test_a_recall_before_the_first_token_sends_nothing(
        self, bot_for, say, fake_ollama, fake_platforms
    ):
        bot = bot_for("feishu")
        fake_ollama.first_token_delay = 30
        question = say(bot, "think hard", run=False)
        threading.Timer(0.3, stop_signal.request, (question.pk, stop_signal.RECALL)).start()

        pipeline.answer(question.pk)

        question.refresh_from_db()
        assert (question.status, question.stopped) == (Message.Status.ANSWERED, True)
        assert fake_platforms.feishu_chat() == []
        fake_ollama.wait_for_disconnect(5)  # the fake's thread notices it in its own time

    def test_a_recall_after_the_answer_changes_nothing(self, bot_for, say, client, fake_platforms):
        bot = bot_for("feishu")
        question = say(bot, "VPN 连不上")
        shown = fake_platforms.feishu_chat()

        response = client.generic(**feishu.recall_request(bot, question.external_id))

        assert response.status_code == 200
        question.refresh_from_db()
        assert (question.status, question.stopped) == (Message.Status.ANSWERED, False)
        assert fake_platforms.feishu_chat() == shown

    def test_a_recall_without_a_message_id_is_refused(self, bot_for, client):
        bot = bot_for("feishu")
        request = feishu.recall_request(bot, "")
        assert client.generic(**request).status_code == 400

    def test_a_forged_recall_is_refused(self, bot_for, say, client):
        bot = bot_for("feishu")
        question = say(bot, "VPN 连不上", run=False)
        request = feishu.recall_request(bot, question.external_id)
        request["headers"]["X-Lark-Signature"] = "f" * 64

        assert client.generic(**request).status_code == 403
        assert Message.objects.get(pk=question.pk).status == Message.Status.QUEUED


def test_stop_works_through_the_api(
    key_for, tenant_a, fake_ollama, eager_celery, django_capture_on_commit_callbacks
):
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.save()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(tenant_a, 'chat')}")
    ask = {"user": "crm:10042", "conversation": "ticket-7"}
    question = api.post("/api/v1/messages/", {**ask, "text": "a long report"}, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        stop = api.post("/api/v1/messages/", {**ask, "text": "/stop"}, format="json")

    answer = api.get(f"/api/v1/messages/{question.json()['id']}/").json()
    assert (answer["status"], answer["answer"]["text"]) == ("answered", "(stopped)")
    assert stop.json()["answer"]["text"] == "Stopped."
    assert fake_ollama.requests == []


def test_with_the_cache_down_a_queued_question_is_still_stopped(
    bot_for, say, settings, fake_ollama
):
    bot = bot_for("wecom")
    question = say(bot, "a long essay, please", run=False)
    settings.CACHES = {
        "default": {
            "BACKEND": "common.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
        }
    }

    say(bot, "/stop", run=False)

    question.refresh_from_db()
    assert (question.status, question.stopped) == (Message.Status.ANSWERED, True)
    assert question.reply.content == "(stopped)"
