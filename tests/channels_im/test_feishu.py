import json
import time

import pytest
from django.core.cache import cache
from django.db import DatabaseError

from channels_im.platforms.base import DeliveryError, OutboundReply
from channels_im.platforms.feishu.adapter import TEXT_BYTES
from channels_im.platforms.feishu.card import CARD_TEXT_BYTES, LAST_SEQUENCE, StreamingCard
from conversations.models import Message
from conversations.tasks import learn_bot_identities
from tests.callbacks.feishu import (
    BOT_OPEN_ID,
    SENDER_OPEN_ID,
    feishu_post,
    message_request,
    text_event,
    url_verification_request,
)
from tests.channels_im.adapter_contract import AdapterContract
from tests.factories import BotFactory
from tests.fakes import feishu_api
from tests.fakes.ollama import DEFAULT_REPLY
from tests.fakes.platforms import FakePlatforms
from tests.fixtures import PLATFORM_VECTORS

pytestmark = pytest.mark.django_db

FEISHU_CREDENTIALS = {
    "app_id": "cli_a1b2c3d4e5f60001",
    "app_secret": "feishu-app-secret-value",
    "verification_token": "FeishuVerifyToken0001",
    "encrypt_key": "FeishuEncryptKey0001",
    "bot_open_id": BOT_OPEN_ID,
}
VECTORS = PLATFORM_VECTORS["feishu"]


@pytest.fixture
def bot(tenant_a, fake_ollama, fake_platforms):
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.save()
    return BotFactory(tenant=tenant_a, platform="feishu", credentials=dict(FEISHU_CREDENTIALS))


@pytest.fixture
def spec_bot(tenant_a):
    """A bot configured with the keys of the spec's worked example (§3.8)."""
    credentials = {
        "app_id": "cli_spec0001",
        "app_secret": "spec-secret",
        "verification_token": VECTORS["verification_token"],
        "encrypt_key": VECTORS["encrypt_key"],
        "bot_open_id": "ou_spec_bot",
    }
    return BotFactory(tenant=tenant_a, platform="feishu", credentials=credentials)


@pytest.fixture
def deliver(eager_celery, django_capture_on_commit_callbacks):
    """Run a callback and everything it enqueues, in-process."""

    def run(client, request):
        with django_capture_on_commit_callbacks(execute=True):
            return client.generic(**request)

    return run


def post_event(client, bot, event, **kwargs):
    return client.generic(**feishu_post(bot, json.dumps(event, ensure_ascii=False), **kwargs))


def reply(text, key="1", live=None, message_id="om_question"):
    return OutboundReply(
        key=key,
        text=text,
        recipient=SENDER_OPEN_ID,
        is_group=False,
        reply_context={"message_id": message_id},
        live=live or {},
    )


def card_operations(fake_platforms, op):
    return [c for c in fake_platforms.messages("feishu_card") if c["op"] == op]


# --- the callback ----------------------------------------------------------------------


@pytest.mark.parametrize("encrypt", [False, True])
def test_it_answers_the_url_verification_with_the_challenge(client, bot, encrypt):
    response = client.generic(**url_verification_request(bot, "challenge-42", encrypt=encrypt))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"challenge": "challenge-42"}


def test_it_answers_the_spec_vectors_encrypted_challenge(client, spec_bot):
    body = json.dumps(VECTORS["url_verification"]["body"])
    response = client.post(spec_bot.callback_path, body, content_type="application/json")
    assert json.loads(response.content) == VECTORS["url_verification"]["response"]


def test_it_refuses_a_url_verification_with_another_token(client, bot):
    response = client.generic(**url_verification_request(bot, "c", token="SomeoneElsesToken"))
    assert response.status_code == 403


def test_it_accepts_the_spec_vectors_event(client, spec_bot, monkeypatch):
    event = VECTORS["event"]
    # The vector was signed at 1700000000; freeze the clock there for the window check.
    monkeypatch.setattr(time, "time", lambda: 1700000000.0)
    response = client.post(
        spec_bot.callback_path,
        event["raw_body"],
        content_type="application/json",
        headers=event["headers"],
    )
    assert response.status_code == 200
    assert json.loads(response.content) == json.loads(event["lark_oapi_dispatcher_result"]["body"])
    message = Message.objects.get()
    assert (message.content, message.external_id, message.sender) == (
        "你好",
        "om_spec0001",
        "ou_spec_sender",
    )
    assert message.conversation.chat_id == "oc_spec_chat"
    assert message.reply_context["is_group"] is True
    assert message.reply_context["message_id"] == "om_spec0001"


def test_it_stores_a_p2p_message_and_acknowledges_with_success(client, bot):
    response = client.generic(**message_request(bot, "How do I reset my VPN?", "om_1"))
    assert (response.status_code, json.loads(response.content)) == (200, {"msg": "success"})
    message = Message.objects.get()
    assert (message.content, message.external_id, message.sender) == (
        "How do I reset my VPN?",
        "om_1",
        SENDER_OPEN_ID,
    )
    assert message.conversation.chat_id == "oc_p2p_0001"
    assert message.reply_context["is_group"] is False


def test_it_makes_no_platform_call_inside_the_callback(client, bot, fake_platforms):
    assert client.generic(**message_request(bot, "hi", "om_1")).status_code == 200
    assert fake_platforms.requests == []


@pytest.mark.parametrize("bot_open_id", [BOT_OPEN_ID, ""])
def test_it_strips_the_bots_mention_and_names_everyone_else(client, bot, bot_open_id):
    bot.credentials = dict(bot.credentials, bot_open_id=bot_open_id)
    bot.save()
    event = text_event(
        bot.credentials, "请问 @_user_2 负责的预算审批到哪一步了 @_all", "om_1", group=True
    )
    event["event"]["message"]["mentions"].append(
        {"key": "@_user_2", "id": {"open_id": "ou_wang"}, "name": "王小明"}
    )
    assert post_event(client, bot, event).status_code == 200
    message = Message.objects.get()
    assert message.content == "请问 @王小明 负责的预算审批到哪一步了 @all"
    assert message.reply_context["is_group"] is True


@pytest.mark.parametrize("bot_open_id", [BOT_OPEN_ID, ""])
def test_it_ignores_a_group_message_that_does_not_mention_the_bot(client, bot, bot_open_id):
    bot.credentials = dict(bot.credentials, bot_open_id=bot_open_id)
    bot.save()
    event = text_event(bot.credentials, "hi", "om_1", group=True)
    # Another member is mentioned; without bot_open_id, no mention at all.
    event["event"]["message"]["mentions"] = (
        [{"key": "@_user_1", "id": {"open_id": "ou_someone"}}] if bot_open_id else []
    )
    response = post_event(client, bot, event)
    assert (response.status_code, json.loads(response.content)) == (200, {"msg": "success"})
    assert not Message.objects.exists()


def test_it_accepts_any_mention_when_the_bots_open_id_is_not_configured(client, bot):
    bot.credentials = {k: v for k, v in bot.credentials.items() if k != "bot_open_id"}
    bot.save()
    request = message_request(bot, "hi", "om_1", group=True, mention_bot=False)
    assert client.generic(**request).status_code == 200
    assert Message.objects.get().content == "hi"


def test_it_ignores_a_duplicate_event_id_even_with_another_message_id(client, bot):
    for msg_id in ("om_1", "om_2"):
        request = message_request(bot, "hi", msg_id, event_id="ev-1")
        assert client.generic(**request).status_code == 200
    assert list(Message.objects.values_list("external_id", flat=True)) == ["om_1"]


def test_it_takes_an_event_again_after_the_database_failed(client, bot, monkeypatch):
    import channels_im.views

    def database_down(*args):
        raise DatabaseError("connection refused")

    request = message_request(bot, "hi", "om_1", event_id="ev-1")
    with monkeypatch.context() as patch:
        patch.setattr(channels_im.views, "receive", database_down)
        assert client.generic(**request).status_code == 503
    assert client.generic(**request).status_code == 200
    assert Message.objects.get().external_id == "om_1"


@pytest.mark.parametrize("message_type", ["image", "file", "audio", "sticker", "media"])
def test_it_tells_the_person_what_it_cannot_read(
    client, bot, deliver, fake_platforms, message_type
):
    event = text_event(bot.credentials, "", "om_1", message_type=message_type)
    event["event"]["message"]["content"] = json.dumps({"image_key": "img_v2_1"})
    response = deliver(client, feishu_post(bot, json.dumps(event)))
    assert (response.status_code, json.loads(response.content)) == (200, {"msg": "success"})
    row = Message.objects.get(role="user")
    assert (row.status, row.content) == ("ignored", f"[{message_type}]")
    [notice] = fake_platforms.feishu_chat()
    assert "only read text" in notice


@pytest.mark.parametrize("localised", [False, True])
def test_it_reads_a_rich_text_post_with_its_mentions(client, bot, localised):
    post = {
        "title": "打印机",
        "content": [
            [
                {"tag": "at", "user_id": "@_user_1", "user_name": "Bot"},
                {"tag": "text", "text": " 三楼的打印机："},
            ],
            [
                {"tag": "text", "text": "1. 卡纸", "style": ["bold"]},
                {"tag": "img", "image_key": "k"},
            ],
            [
                {"tag": "a", "text": "报修单", "href": "https://it.acme.cn/t/1"},
                {"tag": "text", "text": " 找 "},
                {"tag": "at", "user_id": "@_user_2", "user_name": "王小明"},
            ],
            [{"tag": "code_block", "language": "SHELL", "text": "lpstat -p"}],
        ],
    }
    event = text_event(bot.credentials, "", "om_1", group=True, message_type="post")
    event["event"]["message"]["content"] = json.dumps({"zh_cn": post} if localised else post)
    event["event"]["message"]["mentions"].append(
        {"key": "@_user_2", "id": {"open_id": "ou_wang"}, "name": "王小明"}
    )
    assert post_event(client, bot, event).status_code == 200
    assert Message.objects.get().content == (
        "打印机\n三楼的打印机：\n1. 卡纸\n报修单 找 @王小明\n```SHELL\nlpstat -p\n```"
    )


def test_it_acknowledges_and_ignores_other_events(client, bot):
    event = text_event(bot.credentials, "hi", "om_1")
    event["header"]["event_type"] = "im.chat.member.bot.added_v1"
    assert post_event(client, bot, event).status_code == 200
    assert not Message.objects.exists()


def test_it_rejects_a_wrong_verification_token(client, bot):
    event = text_event(bot.credentials, "hi", "om_1", token="SomeoneElsesToken")
    assert post_event(client, bot, event).status_code == 403
    assert not Message.objects.exists()


def test_it_rejects_a_signature_over_a_reserialised_body(client, bot):
    request = message_request(bot, "hi", "om_1")
    request["data"] = json.dumps(json.loads(request["data"]), indent=2).encode()
    assert client.generic(**request).status_code == 403
    assert not Message.objects.exists()


def test_it_rejects_an_unsigned_plain_event(client, bot):
    request = feishu_post(bot, json.dumps(text_event(bot.credentials, "hi", "om_1")), encrypt=False)
    del request["headers"]["X-Lark-Signature"]
    assert client.generic(**request).status_code == 403


@pytest.mark.parametrize(
    "plaintext",
    ["[]", "not json", '{"type": "url_verification", "token": "%s"}', '"a string"'],
)
def test_it_rejects_an_encrypted_body_that_is_not_an_event_with_400(client, bot, plaintext):
    plaintext = plaintext.replace("%s", bot.credentials["verification_token"])
    assert client.generic(**feishu_post(bot, plaintext)).status_code == 400


@pytest.mark.parametrize(
    "body", [b"", b"[]", b'{"encrypt": 5}', b'{"encrypt": "not base64!"}', b"\xff\xfe"]
)
def test_it_rejects_a_malformed_body_with_400(client, bot, body):
    response = client.post(bot.callback_path, body, content_type="application/json")
    assert response.status_code == 400
    assert not Message.objects.exists()


def test_it_rejects_a_text_message_whose_content_is_not_json(client, bot):
    event = text_event(bot.credentials, "hi", "om_1")
    event["event"]["message"]["content"] = "{broken"
    assert post_event(client, bot, event).status_code == 400


# --- replies ---------------------------------------------------------------------------


def test_it_replies_to_the_message_with_an_idempotency_key(bot, fake_platforms):
    bot.adapter.send(reply("Restart the client."))
    bot.adapter.send(reply("Restart the client."))  # a retried delivery
    [request, retried] = fake_platforms.received("/open-apis/im/v1/messages/om_question/reply")
    assert request.json["uuid"] == retried.json["uuid"]
    assert request.json["msg_type"] == "text"
    assert json.loads(request.json["content"]) == {"text": "Restart the client."}
    assert fake_platforms.feishu_chat() == ["Restart the client."]


def test_it_splits_a_long_answer_into_replies_with_their_own_keys(bot, fake_platforms):
    text = "\n\n".join(f"Paragraph {n}. " + "模型" * 3000 for n in range(4))  # ~72 KB
    bot.adapter.send(reply(text))
    parts = fake_platforms.feishu_chat()
    assert len(parts) == 4
    assert all(len(part.encode()) <= TEXT_BYTES for part in parts)
    assert "\n\n".join(parts) == text
    assert len({m["uuid"] for m in fake_platforms.messages("feishu")}) == 4


def test_it_caches_the_tenant_token_and_refreshes_it_when_rejected(bot, fake_platforms):
    for text in ("a", "b"):
        bot.adapter.send(reply(text, key=text))
    fake_platforms.expire_all_tokens()  # the next reply meets 99991663
    bot.adapter.send(reply("c", key="c"))
    assert fake_platforms.feishu_chat() == ["a", "b", "c"]
    token_path = "/open-apis/auth/v3/tenant_access_token/internal"
    assert len(fake_platforms.received(token_path)) == 2


@pytest.mark.parametrize(
    "code, permanent", [(99991402, False), (230020, False), (11020, False), (230002, True)]
)
def test_it_tells_rate_limits_from_permanent_errors(bot, fake_platforms, code, permanent):
    fake_platforms.fail_next = [
        (200, {"code": 0, "tenant_access_token": "t-1", "expire": 7200}),
        (400, {"code": code, "msg": "no"}),
    ]
    with pytest.raises(DeliveryError) as error:
        bot.adapter.send(reply("hi"))
    assert (error.value.permanent, error.value.code) == (permanent, code)


def test_it_reports_a_rejected_app_secret_as_permanent(bot, fake_platforms):
    fake_platforms.fail_next = [(400, {"code": 10014, "msg": "app secret invalid"})]
    with pytest.raises(DeliveryError) as error:
        bot.adapter.send(reply("hi"))
    assert (error.value.permanent, error.value.code) == (True, 10014)


def test_it_sends_to_the_lark_api_base_of_the_bot(bot, fake_platforms, settings):
    with FakePlatforms() as lark:
        settings.FEISHU_ALLOWED_API_BASES = [lark.url]
        bot.credentials = dict(bot.credentials, api_base=lark.url + "/")
        bot.save()
        bot.adapter.send(reply("hello from Lark"))
        assert lark.feishu_chat() == ["hello from Lark"]
    assert fake_platforms.requests == []


def test_it_never_sends_the_app_secret_to_an_api_base_the_operator_did_not_allow(
    bot, fake_platforms
):
    with FakePlatforms() as elsewhere:
        bot.credentials = dict(bot.credentials, api_base=elsewhere.url)
        bot.save()
        with pytest.raises(DeliveryError) as error:
            bot.adapter.send(reply("hello"))
        assert error.value.permanent
        assert elsewhere.requests == []


# --- CardKit streaming -----------------------------------------------------------------


def test_it_streams_the_answer_into_a_card(client, bot, deliver, fake_ollama, fake_platforms):
    fake_ollama.reply = " ".join(f"word{n}" for n in range(24))
    fake_ollama.chunk_delay = 0.05
    started = time.monotonic()
    assert deliver(client, message_request(bot, "Tell me a story", "om_1")).status_code == 200
    duration = time.monotonic() - started

    [created] = card_operations(fake_platforms, "create")
    assert created["card"]["config"]["streaming_mode"] is True
    [sent] = fake_platforms.received("/open-apis/im/v1/messages/om_1/reply")
    assert sent.json["msg_type"] == "interactive"
    assert json.loads(sent.json["content"])["data"]["card_id"] == created["card_id"]
    puts = card_operations(fake_platforms, "content")
    sequences = [p["sequence"] for p in puts]
    assert len(puts) >= 3  # pushed while the model wrote, then the final text
    assert sequences == sorted(set(sequences))
    assert len(puts) <= duration / StreamingCard.interval + 2
    assert puts[-1]["content"] == fake_ollama.reply
    [finished] = card_operations(fake_platforms, "settings")
    assert json.loads(finished["settings"]) == {"config": {"streaming_mode": False}}
    assert finished["sequence"] == LAST_SEQUENCE
    assert fake_platforms.feishu_chat() == [fake_ollama.reply]
    assert Message.objects.get(role="assistant").status == "answered"


def test_a_card_whose_post_was_not_confirmed_is_shown_once_and_finished(
    client, bot, deliver, fake_ollama, fake_platforms
):
    """Feishu showed the card, but a proxy lost its answer (502): the card is kept, posted
    again under the same uuid (Feishu shows it once) and finished, never left typing; no
    second message repeats the answer."""
    fake_ollama.reply = " ".join(f"word{n}" for n in range(12))
    fake_ollama.chunk_delay = 0.02
    reply_path = "/open-apis/im/v1/messages/om_1/reply"
    fake_platforms.lose_answer = [reply_path]  # the card's post, at the first words
    deliver(client, message_request(bot, "Tell me a story", "om_1"))
    assert fake_platforms.feishu_chat() == [fake_ollama.reply]
    [card] = card_operations(fake_platforms, "create")
    [finished] = card_operations(fake_platforms, "settings")
    assert (finished["card_id"], json.loads(finished["settings"])) == (
        card["card_id"],
        {"config": {"streaming_mode": False}},
    )
    sent = fake_platforms.received(reply_path)
    assert len(sent) == 2 and sent[0].json["uuid"] == sent[1].json["uuid"]
    assert Message.objects.get(role="assistant").status == "answered"


def test_a_text_reply_whose_answer_was_lost_is_resent_under_the_same_uuid(
    client, bot, deliver, fake_ollama, fake_platforms, monkeypatch
):
    monkeypatch.setitem(  # no cards: the answer goes as text replies
        fake_platforms.routes,
        ("POST", "/open-apis/cardkit/v1/cards"),
        lambda server, request: (400, {"code": 200860, "msg": "cards unavailable"}),
    )
    reply_path = "/open-apis/im/v1/messages/om_1/reply"
    fake_platforms.lose_answer = [reply_path]
    deliver(client, message_request(bot, "What is our VPN address?", "om_1"))
    assert fake_platforms.feishu_chat() == [fake_ollama.reply]
    sent = fake_platforms.received(reply_path)
    assert len(sent) == 2 and sent[0].json["uuid"] == sent[1].json["uuid"]
    assert Message.objects.get(role="assistant").status == "answered"


def test_it_does_not_stream_without_a_message_to_reply_to(bot):
    assert bot.adapter.live(reply("", message_id="")) is None


def start_card(bot, text="Once"):
    return bot.adapter.live(reply("")).start(text)


def test_it_puts_what_a_card_cannot_hold_in_text_replies(bot, fake_platforms):
    text = "\n\n".join(f"Part {n}. " + "文" * 5000 for n in range(3))  # ~45 KB
    bot.adapter.send(reply(text, live=start_card(bot)))
    [card, *rest] = fake_platforms.feishu_chat()
    assert len(card.encode()) <= CARD_TEXT_BYTES
    assert rest
    assert "\n\n".join([card, *rest]) == text


def test_it_finishes_a_card_once_when_the_delivery_repeats(bot, fake_platforms):
    live = start_card(bot)
    for _ in range(2):  # the second time, both steps meet 300317: already done
        bot.adapter.send(reply("The end.", live=live))
    assert [p["content"] for p in card_operations(fake_platforms, "content")] == ["The end."]
    [finished] = card_operations(fake_platforms, "settings")
    assert finished["sequence"] == LAST_SEQUENCE
    assert fake_platforms.feishu_chat() == ["The end."]


def test_it_retries_a_card_finish_that_failed_on_the_way(bot, fake_platforms):
    live = start_card(bot)
    fake_platforms.fail_next = [(503, {})]
    with pytest.raises(DeliveryError) as error:
        bot.adapter.send(reply("The end.", live=live))
    assert not error.value.permanent
    bot.adapter.send(reply("The end.", live=live))
    assert fake_platforms.feishu_chat() == ["The end."]


def test_it_answers_as_text_when_the_card_cannot_be_finished(bot, fake_platforms):
    live = start_card(bot)
    fake_platforms.fail_next = [(400, {"code": 200750, "msg": "The card entity has expired"})]
    bot.adapter.send(reply("The end.", live=live))
    assert fake_platforms.feishu_chat()[-1] == "The end."


def test_it_continues_the_sequence_of_a_card_started_by_an_earlier_attempt(bot, fake_platforms):
    first = bot.adapter.live(reply(""))  # an attempt that started the card, then failed
    live = first.start("Once")
    first.update("Once upon")
    time.sleep(0.01)  # the retry comes after a backoff
    retry = bot.adapter.live(reply("", live=live))
    retry.update("Once upon a time")
    puts = card_operations(fake_platforms, "content")
    assert [p["content"] for p in puts] == ["Once upon", "Once upon a time"]


class TestFeishuContract(AdapterContract):
    platform = "feishu"
    credentials = FEISHU_CREDENTIALS

    def message_request(self, bot, text, msg_id, **faults):
        return message_request(bot, text, msg_id, **faults)

    def malformed_request(self, bot):
        return feishu_post(bot, '{"schema": "2.0", "header": ')

    def delivered_texts(self, fake_platforms, client, bot):
        return fake_platforms.feishu_chat()


def test_an_answer_sent_again_after_the_worker_died_before_recording_it_arrives_once(
    client, bot, deliver, fake_ollama, fake_platforms, settings, monkeypatch
):
    """The answer goes out before its row is written. A worker dying in between leaves the
    question to be answered again: the new answer carries the same key, one per question,
    and Feishu keeps the first."""
    from conversations.tasks import sweep_stuck_messages

    settings.IM_STUCK_AFTER_SECONDS = 0
    monkeypatch.setitem(  # no cards: the answer goes as text replies
        fake_platforms.routes,
        ("POST", "/open-apis/cardkit/v1/cards"),
        lambda server, request: (400, {"code": 200860, "msg": "cards unavailable"}),
    )
    deliver(client, message_request(bot, "What is our VPN address?", "om_1"))
    # What a death right after the send leaves: no reply row, nothing remembered of the
    # send (conversations/sent.py), and the question answering under a claim run out.
    Message.objects.filter(role="assistant").delete()
    cache.clear()
    Message.objects.filter(role="user").update(
        status="answering", claimed_until="2000-01-01T00:00:00Z"
    )
    sweep_stuck_messages.delay()
    fake_ollama.reply = "The next answer"
    deliver(client, message_request(bot, "And the proxy?", "om_2"))

    replies = fake_platforms.received("/open-apis/im/v1/messages/om_1/reply")
    assert len(replies) == 2 and replies[0].json["uuid"] == replies[1].json["uuid"]
    assert fake_platforms.feishu_chat() == [DEFAULT_REPLY, "The next answer"]
    assert set(Message.objects.values_list("status", flat=True)) == {"answered"}


@pytest.fixture
def new_bot(bot):
    """A bot as an admin adds it: the app's credentials, nothing optional."""
    bot.credentials = {k: v for k, v in bot.credentials.items() if k != "bot_open_id"}
    bot.save()
    return bot


def test_a_bot_learns_its_own_open_id_and_then_tells_its_mentions_from_others(
    client, new_bot, fake_platforms
):
    bot = new_bot
    assert learn_bot_identities() == 1
    bot.refresh_from_db()
    assert bot.credentials["bot_open_id"] == feishu_api.BOT_OPEN_ID  # what bot/v3/info says
    assert learn_bot_identities() == 0  # known: Feishu is not asked again
    assert len(fake_platforms.received("/open-apis/bot/v3/info")) == 1
    others = text_event(bot.credentials, "hi", "om_1", group=True, mention_bot=False)
    assert post_event(client, bot, others).status_code == 200
    assert not Message.objects.exists()


def test_a_bot_whose_identity_cannot_be_learned_says_why(new_bot, fake_platforms):
    bot = new_bot
    fake_platforms.fail_next = [(400, {"code": 10014, "msg": "app secret invalid"})]
    assert learn_bot_identities() == 0
    bot.refresh_from_db()
    assert "10014" in bot.last_error and "bot_open_id" not in bot.credentials
    asked = len(fake_platforms.requests)
    learn_bot_identities()  # a minute later: Feishu is not asked again for an hour
    assert len(fake_platforms.requests) == asked


def test_a_card_left_typing_by_a_dead_worker_is_finished_by_the_sweep(
    bot, fake_ollama, fake_platforms, eager_celery, settings, django_capture_on_commit_callbacks
):
    """A worker died mid-answer, its card on screen: the sweep takes the question again,
    and when the model then fails for good the card shows the apology and stops typing."""
    from conversations.delivery import outbound_for
    from conversations.services import receive
    from conversations.tasks import sweep_stuck_messages

    question = receive(
        bot, bot.adapter.parse_message(text_event(bot.credentials, "hi", "om_1")["event"], "ev_1")
    )
    live = bot.adapter.live(outbound_for(question)).start("Hel")
    Message.objects.filter(pk=question.pk).update(
        status="answering",
        claimed_until="2000-01-01T00:00:00Z",
        reply_context={**question.reply_context, "live": live},
    )
    settings.IM_STUCK_AFTER_SECONDS = 0
    fake_ollama.fail_status = 404  # the model was removed meanwhile: no retry helps
    with django_capture_on_commit_callbacks(execute=True):
        sweep_stuck_messages.apply()
    [shown] = fake_platforms.feishu_chat()
    assert shown.startswith("Sorry")
    [finished] = card_operations(fake_platforms, "settings")
    assert json.loads(finished["settings"]) == {"config": {"streaming_mode": False}}
    assert Message.objects.get(pk=question.pk).status == "failed"


def test_a_card_says_thinking_while_the_model_reasons_and_then_shows_only_the_answer(
    client, bot, deliver, fake_ollama, fake_platforms
):
    fake_ollama.thinking = "Let me recall the VPN settings of this company."
    fake_ollama.reply = "vpn.acme.cn, port 443"
    deliver(client, message_request(bot, "VPN?", "om_1"))
    [created] = card_operations(fake_platforms, "create")
    assert created["card"]["body"]["elements"][0]["content"] == "Thinking…"
    assert fake_platforms.feishu_chat() == ["vpn.acme.cn, port 443"]
    shown = [op["content"] for op in card_operations(fake_platforms, "content")]
    assert not any("recall" in text for text in shown)
