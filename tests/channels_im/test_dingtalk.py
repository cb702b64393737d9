import json
import time

import pytest

from channels_im.platforms.base import DeliveryError, OutboundReply
from channels_im.platforms.dingtalk import adapter as dingtalk
from channels_im.platforms.wecom.crypto import WxBizMsgCrypt
from conversations.models import Message
from tests.callbacks.dingtalk import (
    DINGTALK_CREDENTIALS,
    GROUP_ID,
    event_request,
    message_request,
    now_ms,
    robot_message,
)
from tests.channels_im.adapter_contract import AdapterContract
from tests.factories import BotFactory
from tests.fixtures import PLATFORM_VECTORS

pytestmark = pytest.mark.django_db

VECTORS = PLATFORM_VECTORS["dingtalk"]
CARD_TEMPLATE = "382e4302-551d-4880-bf29-a30acfab2e71.schema"


@pytest.fixture
def dingtalk_bot(tenant_a, fake_ollama, fake_platforms):
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.save()
    return BotFactory(
        tenant=tenant_a, platform="dingtalk", name="helpdesk", credentials=DINGTALK_CREDENTIALS
    )


@pytest.fixture
def card_bot(dingtalk_bot):
    dingtalk_bot.credentials = {**DINGTALK_CREDENTIALS, "card_template_id": CARD_TEMPLATE}
    dingtalk_bot.save()
    return dingtalk_bot


@pytest.fixture
def deliver(eager_celery, django_capture_on_commit_callbacks):
    def run(client, request):
        with django_capture_on_commit_callbacks(execute=True):
            return client.generic(**request)

    return run


def freeze_clock(monkeypatch, at_ms: int) -> None:
    monkeypatch.setattr(dingtalk, "now_ms", lambda: at_ms)


def reply(text, *, group=False, webhook=True, live=None, key="1"):
    """An answer addressed as the pipeline addresses it, with a stored callback's context."""
    from django.conf import settings

    chat = GROUP_ID if group else "cidSingle-zhangsan=="
    context = {
        "is_group": group,
        "session_webhook": f"{settings.DINGTALK_OAPI_BASE}/robot/sendBySession?session=s",
        "session_webhook_expires_ms": now_ms() + (3_600_000 if webhook else -1000),
        "conversation_id": chat,
        "sender_staff_id": "zhangsan",
        "sender_nick": "Zhangsan",
    }
    return OutboundReply(
        key=key,
        text=text,
        recipient="zhangsan",
        is_group=group,
        reply_context=context,
        live=live or {},
    )


# --- receiving ------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["robot_http_sign"], ids=["doc", "spec"])
def test_it_accepts_the_spec_sign_vectors(client, dingtalk_bot, monkeypatch, vector):
    dingtalk_bot.credentials = {**DINGTALK_CREDENTIALS, "app_secret": vector["app_secret"]}
    dingtalk_bot.save()
    freeze_clock(monkeypatch, int(vector["timestamp"]) + 4 * 60_000)
    response = client.post(
        dingtalk_bot.callback_path,
        json.dumps(robot_message("hello", "vector-1")),
        content_type="application/json",
        headers={"timestamp": vector["timestamp"], "sign": vector["sign"]},
    )
    assert response.status_code == 200
    assert Message.objects.get().content == "hello"


@pytest.mark.parametrize("missing", ["timestamp", "sign"])
def test_it_rejects_a_callback_without_its_sign_headers(client, dingtalk_bot, missing):
    request = message_request(dingtalk_bot, "hi", "m-1")
    del request["headers"][missing]
    assert client.generic(**request).status_code == 403
    assert not Message.objects.exists()


@pytest.mark.parametrize("skew_ms", [-301_000, 301_000, 3_000_000])
def test_it_rejects_a_timestamp_more_than_five_minutes_away(
    client, dingtalk_bot, monkeypatch, skew_ms
):
    # DingTalk allows an hour; its sign does not cover the body, so we allow 5 minutes.
    request = message_request(dingtalk_bot, "hi", "m-1")
    freeze_clock(monkeypatch, int(request["headers"]["timestamp"]) + skew_ms)
    assert client.generic(**request).status_code == 403


def test_a_captured_sign_cannot_carry_another_body(client, dingtalk_bot):
    genuine = message_request(dingtalk_bot, "hi", "m-1")
    assert client.generic(**genuine).status_code == 200
    forged = message_request(dingtalk_bot, "send me the payroll", "m-forged", sender="lisi")
    forged["headers"] = genuine["headers"]
    assert client.generic(**forged).status_code == 403
    assert client.generic(**genuine).status_code == 200  # the platform's own retry: a duplicate
    assert list(Message.objects.values_list("external_id", flat=True)) == ["m-1"]


def test_it_rejects_a_callback_that_names_another_robot(client, dingtalk_bot):
    request = message_request(dingtalk_bot, "hi", "m-1", robot_code="dingotherrobot")
    assert client.generic(**request).status_code == 403
    assert not Message.objects.exists()


def test_it_stores_a_single_chat_message_without_calling_dingtalk(
    client, dingtalk_bot, fake_platforms
):
    response = client.generic(**message_request(dingtalk_bot, "  VPN 连不上 ", "m-1"))
    assert (response.status_code, response.json()) == (200, {})
    message = Message.objects.get()
    assert (message.content, message.sender, message.external_id) == (
        "VPN 连不上",
        "zhangsan",
        "m-1",
    )
    assert message.conversation.chat_id == "cidSingle-zhangsan=="
    context = message.reply_context
    assert context["is_group"] is False
    assert context["session_webhook"].endswith("/robot/sendBySession?session=s-m-1")
    assert context["session_webhook_expires_ms"] > now_ms()
    assert (context["sender_staff_id"], context["sender_nick"]) == ("zhangsan", "Zhangsan")
    assert fake_platforms.requests == []  # no platform call inside the callback


@pytest.mark.parametrize("text", ["VPN?", "@helpdesk VPN?", "@helpdesk\u2005 VPN?"])
def test_it_stores_a_group_message_with_the_mention_stripped(client, dingtalk_bot, text):
    request = message_request(dingtalk_bot, text, "m-1", group=True)
    assert client.generic(**request).status_code == 200
    message = Message.objects.get()
    assert message.content == "VPN?"
    assert message.conversation.chat_id == GROUP_ID
    assert message.reply_context["is_group"] is True
    assert message.reply_context["conversation_id"] == GROUP_ID


def test_it_ignores_a_group_message_that_does_not_mention_the_robot(client, dingtalk_bot):
    request = message_request(dingtalk_bot, "chatter", "m-1", group=True, at_bot=False)
    response = client.generic(**request)
    assert (response.status_code, response.json()) == (200, {})
    assert not Message.objects.exists()


def robot_request(bot, msg_id, msgtype, content, *, group=False):
    """A signed robot callback of a type other than text, as DingTalk sends it."""
    request = message_request(bot, "", msg_id, msgtype=msgtype, group=group)
    body = json.loads(request["data"])
    del body["text"]
    body["content"] = content
    return {**request, "data": json.dumps(body, ensure_ascii=False).encode()}


@pytest.mark.parametrize(
    ("msgtype", "content", "question"),
    [
        (
            "richText",
            {"richText": [{"text": "VPN 连不上：\n"}, {"type": "picture"}, {"text": "**急**"}]},
            "VPN 连不上：\n**急**",
        ),
        ("audio", {"recognition": "打印机怎么连？", "duration": 3000}, "打印机怎么连？"),
    ],
)
def test_it_reads_rich_text_and_voice_transcripts(client, dingtalk_bot, msgtype, content, question):
    response = client.generic(**robot_request(dingtalk_bot, "m-1", msgtype, content))
    assert response.status_code == 200
    row = Message.objects.get()
    assert (row.status, row.content) == ("queued", question)


@pytest.mark.parametrize("msgtype", ["picture", "file", "video"])
def test_it_tells_the_person_what_it_cannot_read(
    client, dingtalk_bot, fake_platforms, eager_celery, django_capture_on_commit_callbacks, msgtype
):
    request = robot_request(dingtalk_bot, "m-1", msgtype, {"downloadCode": "dc-1"})
    with django_capture_on_commit_callbacks(execute=True):
        assert client.generic(**request).status_code == 200
    row = Message.objects.get(role="user")
    assert (row.status, row.content) == ("ignored", f"[{msgtype}]")
    [notice] = fake_platforms.dingtalk_texts()
    assert "only read text" in notice


def test_it_ignores_a_group_picture_that_does_not_mention_it(client, dingtalk_bot):
    request = robot_request(dingtalk_bot, "m-1", "picture", {"downloadCode": "dc"}, group=True)
    body = json.loads(request["data"])
    body["isInAtList"] = False
    response = client.generic(**{**request, "data": json.dumps(body).encode()})
    assert (response.status_code, response.json()) == (200, {})
    assert not Message.objects.exists()


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"[" * 100_000, b'{"msgtype": "text"}'])
def test_it_rejects_bodies_that_are_not_a_robot_message(client, dingtalk_bot, body):
    request = message_request(dingtalk_bot, "hi", "m-1")
    assert client.generic(**{**request, "data": body}).status_code == 400
    assert not Message.objects.exists()


# --- replying ---------------------------------------------------------------------------


def test_it_replies_in_a_group_through_the_session_webhook_mentioning_the_asker(
    client, dingtalk_bot, deliver, fake_ollama, fake_platforms
):
    fake_ollama.reply = "## 重连 VPN\n打开设置，然后重新连接。"
    deliver(client, message_request(dingtalk_bot, "VPN?", "m-1", group=True))
    [sent] = fake_platforms.messages("dingtalk")
    assert sent["msgtype"] == "markdown"
    assert sent["markdown"]["title"] == "重连 VPN"
    assert sent["markdown"]["text"] == "@zhangsan\n\n## 重连 VPN\n打开设置，然后重新连接。"
    assert sent["at"]["atUserIds"] == ["zhangsan"]
    [call] = fake_platforms.received("/robot/sendBySession")
    assert call.query == {"session": "s-m-1"}
    assert fake_platforms.received("/v1.0/oauth2/accessToken") == []
    assert Message.objects.get(role="assistant").delivered_at is not None


def test_it_replies_in_a_single_chat_without_a_mention(
    client, dingtalk_bot, deliver, fake_ollama, fake_platforms
):
    fake_ollama.reply = "Restart the client."
    deliver(client, message_request(dingtalk_bot, "VPN?", "m-1"))
    [sent] = fake_platforms.messages("dingtalk")
    assert sent["markdown"] == {"title": "Restart the client.", "text": "Restart the client."}
    assert "at" not in sent


@pytest.mark.parametrize(
    ("group", "path", "target"),
    [
        (True, "/v1.0/robot/groupMessages/send", ("openConversationId", GROUP_ID)),
        (False, "/v1.0/robot/oToMessages/batchSend", ("userIds", ["zhangsan"])),
    ],
)
def test_it_uses_the_openapi_once_the_webhook_expired(
    client, dingtalk_bot, deliver, fake_ollama, fake_platforms, group, path, target
):
    fake_ollama.reply = "**Done**"
    request = message_request(dingtalk_bot, "hi", "m-1", group=group, webhook_expired=True)
    deliver(client, request)
    [sent] = fake_platforms.messages("dingtalk")
    assert fake_platforms.received(path)
    assert sent[target[0]] == target[1]
    assert (sent["robotCode"], sent["msgKey"]) == ("dingspecappkey0001", "sampleMarkdown")
    assert json.loads(sent["msgParam"]) == {"title": "Done", "text": "**Done**"}
    assert fake_platforms.received("/robot/sendBySession") == []


def test_it_fetches_the_access_token_once_for_several_sends(dingtalk_bot, fake_platforms):
    for text in ("a", "b", "c"):
        dingtalk_bot.adapter.send(reply(text, webhook=False))
    assert fake_platforms.dingtalk_texts() == ["a", "b", "c"]
    [fetch] = fake_platforms.received("/v1.0/oauth2/accessToken")
    assert fetch.json == {"appKey": "dingspecappkey0001", "appSecret": "SpecAppSecret"}


def test_it_refreshes_a_revoked_token_once_and_resends(dingtalk_bot, fake_platforms):
    dingtalk_bot.adapter.send(reply("first", group=True, webhook=False))
    fake_platforms.expire_all_tokens()
    dingtalk_bot.adapter.send(reply("second", group=True, webhook=False))
    assert fake_platforms.dingtalk_texts() == ["first", "second"]
    assert len(fake_platforms.received("/v1.0/oauth2/accessToken")) == 2
    assert len(fake_platforms.received("/v1.0/robot/groupMessages/send")) == 3


@pytest.mark.parametrize("trick", ["other_host", "userinfo"])
def test_it_never_posts_to_a_webhook_on_a_host_it_was_not_given(
    client, dingtalk_bot, deliver, fake_platforms, settings, trick
):
    port = fake_platforms.url.rsplit(":", 1)[1]
    # Both URLs reach the fake server, so a wrong POST would be seen.
    foreign = {
        "other_host": f"http://localhost:{port}",
        "userinfo": f"{settings.DINGTALK_OAPI_BASE}@localhost:{port}",
    }[trick]
    url = f"{foreign}/robot/sendBySession?session=evil"
    deliver(client, message_request(dingtalk_bot, "hi", "m-1", webhook_url=url))
    assert fake_platforms.received("/robot/sendBySession") == []
    assert len(fake_platforms.received("/v1.0/robot/oToMessages/batchSend")) == 1
    assert Message.objects.get(role="assistant").delivered_at is not None


def test_it_splits_long_answers_at_paragraphs(dingtalk_bot, fake_platforms):
    text = "\n\n".join(f"第{n}段：" + "模型的回答很长。" * 60 for n in range(5))
    dingtalk_bot.adapter.send(reply(text, group=True))
    parts = fake_platforms.dingtalk_texts()
    assert len(parts) == 2
    assert parts[0].startswith("@zhangsan\n\n第0段")
    assert parts[1].startswith("第")  # cut at a paragraph, and only the first part mentions
    assert all(len(p) <= 2000 and len(p.encode()) <= 6000 + 20 for p in parts)
    assert parts[0].removeprefix("@zhangsan\n\n") + "\n\n" + parts[1] == text


def test_it_retries_a_webhook_that_says_send_later(dingtalk_bot, fake_platforms):
    fake_platforms.fail_next = [(200, {"errcode": 130101, "errmsg": "send too fast"})]
    with pytest.raises(DeliveryError) as error:
        dingtalk_bot.adapter.send(reply("hi"))
    assert (error.value.permanent, error.value.code) == (False, 130101)


@pytest.mark.parametrize(
    "answer",
    [
        (200, {"errcode": 300001, "errmsg": "session不存在"}),
        (200, {"errcode": 400013, "errmsg": "refused"}),
        (404, "<html>gone</html>"),
    ],
)
@pytest.mark.parametrize("group", [False, True])
def test_a_webhook_that_fails_for_good_falls_back_to_the_openapi(
    dingtalk_bot, fake_platforms, answer, group
):
    fake_platforms.fail_next = [answer]
    dingtalk_bot.adapter.send(reply("hi", group=group))
    path = "/v1.0/robot/groupMessages/send" if group else "/v1.0/robot/oToMessages/batchSend"
    assert len(fake_platforms.received(path)) == 1
    assert fake_platforms.dingtalk_texts() == ["hi"]


def test_it_reports_a_recipient_that_is_not_a_staff_id(dingtalk_bot, fake_platforms):
    dingtalk_bot.adapter.client.tokens.get()
    fake_platforms.fail_next = [
        (200, {"processQueryKey": "k", "invalidStaffIdList": ["zhangsan"]}),
    ]
    with pytest.raises(DeliveryError) as error:
        dingtalk_bot.adapter.send(reply("hi", webhook=False))
    assert error.value.permanent


# --- AI card ----------------------------------------------------------------------------


def test_it_sends_one_message_when_no_card_template_is_set(dingtalk_bot):
    assert dingtalk_bot.adapter.live(reply("")) is None


def test_it_streams_the_answer_into_an_ai_card(
    client, card_bot, deliver, fake_ollama, fake_platforms
):
    words = [f"word{n}" for n in range(16)]
    fake_ollama.reply, fake_ollama.chunk_delay = " ".join(words), 0.1
    started = time.monotonic()
    deliver(client, message_request(card_bot, "hi", "m-1", group=True))
    elapsed = time.monotonic() - started

    [create] = fake_platforms.received("/v1.0/card/instances/createAndDeliver")
    card = create.json
    assert card["cardTemplateId"] == CARD_TEMPLATE
    assert card["openSpaceId"] == f"dtv1.card//IM_GROUP.{GROUP_ID}"
    assert card["imGroupOpenDeliverModel"] == {"robotCode": "dingspecappkey0001"}
    assert card["cardData"] == {"cardParamMap": {"flowStatus": "1"}}
    *partial, final = [r.json for r in fake_platforms.received("/v1.0/card/streaming")]
    # Throttled to one push per 0.5 s (the first at once), though 16 pieces came in ≥ 1.5 s.
    assert 2 <= len(partial) <= 1 + elapsed / 0.5
    assert len(partial) < len(words)
    assert all(p["outTrackId"] == card["outTrackId"] and p["key"] == "content" for p in partial)
    assert all(p["isFull"] and not p["isFinalize"] for p in partial)
    assert all(fake_ollama.reply.startswith(p["content"]) for p in partial)
    assert len({p["guid"] for p in [*partial, final]}) == len(partial) + 1
    assert (final["content"], final["isFinalize"]) == (fake_ollama.reply, True)
    [finish] = fake_platforms.received("/v1.0/card/instances")
    assert finish.json["outTrackId"] == card["outTrackId"]
    assert finish.json["cardData"]["cardParamMap"]["flowStatus"] == "3"
    assert fake_platforms.received("/robot/sendBySession") == []
    question = Message.objects.get(role="user")
    assert question.reply_context["live"] == {"out_track_id": card["outTrackId"]}
    assert question.reply.delivered_at is not None


def test_it_delivers_a_single_chat_card_to_the_robot_space(card_bot, fake_platforms):
    live = card_bot.adapter.live(reply("", key="q7"))
    started = live.start("Hel")
    live.update("Hello")
    [create] = fake_platforms.received("/v1.0/card/instances/createAndDeliver")
    assert create.json["openSpaceId"] == "dtv1.card//IM_ROBOT.zhangsan"
    assert create.json["imRobotOpenDeliverModel"]["spaceType"] == "IM_ROBOT"
    assert create.json["outTrackId"].startswith("q7-")
    assert started == {"out_track_id": create.json["outTrackId"]}
    streamed = [r.json["content"] for r in fake_platforms.received("/v1.0/card/streaming")]
    assert streamed == ["Hel", "Hello"]


def test_it_finishes_a_card_started_by_an_earlier_attempt(card_bot, fake_platforms):
    started = card_bot.adapter.live(reply("", key="q7")).start("Hel")
    card_bot.adapter.send(reply("Hello there", live=started))
    assert fake_platforms.dingtalk_texts() == ["Hello there"]
    assert fake_platforms.received("/robot/sendBySession") == []


def test_it_falls_back_to_a_message_when_the_card_cannot_be_created(
    client, card_bot, deliver, fake_ollama, fake_platforms
):
    card_bot.adapter.client.tokens.get()
    fake_platforms.fail_next = [(400, {"code": "param.invalid", "message": "template"})]
    fake_ollama.reply = "plain answer"
    deliver(client, message_request(card_bot, "hi", "m-1"))
    assert fake_platforms.dingtalk_texts() == ["plain answer"]
    assert len(fake_platforms.received("/robot/sendBySession")) == 1


# --- encrypted event callbacks ----------------------------------------------------------


def unseal(bot, response) -> str:
    """The plaintext of a sealed answer, after checking its signature."""
    sealed = response.json()
    creds = bot.credentials
    crypt = WxBizMsgCrypt(creds["token"], creds["aes_key"], creds["app_key"])
    crypt.verify(sealed["msg_signature"], sealed["timeStamp"], sealed["nonce"], sealed["encrypt"])
    assert len(sealed["nonce"]) == 16
    return crypt.decrypt(sealed["encrypt"])


def test_it_answers_the_spec_check_url_event_with_a_sealed_success(
    client, dingtalk_bot, monkeypatch
):
    vector = VECTORS["callback_crypto"]["request"]
    freeze_clock(monkeypatch, int(vector["query"]["timestamp"]) + 1000)
    query = "&".join(f"{k}={v}" for k, v in vector["query"].items())
    response = client.post(
        f"{dingtalk_bot.callback_path}?{query}",
        json.dumps(vector["body"]),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert unseal(dingtalk_bot, response) == "success"
    assert not Message.objects.exists()


def test_it_reads_a_robot_message_inside_an_encrypted_envelope(client, dingtalk_bot):
    response = client.generic(**event_request(dingtalk_bot, robot_message("hi", "ev-1")))
    assert response.status_code == 200
    assert unseal(dingtalk_bot, response) == "success"
    assert Message.objects.get().external_id == "ev-1"


@pytest.mark.parametrize("fault", ["signature", "no_event_keys"])
def test_it_rejects_an_event_it_cannot_verify(client, dingtalk_bot, fault):
    request = event_request(dingtalk_bot, {"EventType": "check_url"})
    if fault == "signature":
        request["path"] = request["path"].replace("signature=", "signature=0")
    else:
        dingtalk_bot.credentials = {k: v for k, v in DINGTALK_CREDENTIALS.items() if k != "token"}
        dingtalk_bot.save()
    assert client.generic(**request).status_code == 403


class TestDingTalkContract(AdapterContract):
    platform = "dingtalk"
    credentials = DINGTALK_CREDENTIALS
    encrypted = False  # the robot's HTTP mode signs a timestamp; the body is plain JSON

    def message_request(self, bot, text, msg_id, **faults):
        # An expired webhook sends the answer through the OpenAPI, which the contract's
        # token tests are about; the webhook path has its own tests above.
        return message_request(bot, text, msg_id, webhook_expired=True, **faults)

    def malformed_request(self, bot):
        return {**message_request(bot, "hi", "bad-1"), "data": b"{not json"}

    def delivered_texts(self, fake_platforms, client, bot):
        return fake_platforms.dingtalk_texts()
