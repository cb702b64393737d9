import json
import time

import pytest

from channels_im.platforms.base import DeliveryError, OutboundReply
from channels_im.platforms.wecom import adapter as wecom
from channels_im.platforms.wecom_bot import adapter as wecom_bot
from channels_im.platforms.wecom_bot.stream import (
    StreamLive,
    StreamStore,
    stream_id_for,
    stream_payload,
)
from conversations.models import Conversation, Message
from tests.callbacks.wecom import with_query
from tests.callbacks.wecom_bot import (
    ROBOT_CREDENTIALS,
    message_request,
    refresh_request,
    response_url,
    robot_payload,
    signed_request,
    stream_of,
    verification_request,
)
from tests.channels_im.adapter_contract import AdapterContract
from tests.factories import BotFactory
from tests.fixtures import PLATFORM_VECTORS

pytestmark = pytest.mark.django_db


def shown_answers(client, bot) -> list[str]:
    """The finished text of every stream, as WeCom's next refresh would show it."""
    shown = []
    for question in Message.objects.filter(bot=bot, role="user").order_by("pk"):
        stream = stream_of(
            bot, client.generic(**refresh_request(bot, question.reply_context["stream_id"]))
        )
        if stream["finish"]:
            shown.append(stream["content"])
    return shown


def late_answers(fake_platforms) -> list[str]:
    return [m["markdown"]["content"] for m in fake_platforms.messages("wecom_bot")]


def question_stream(bot, msg_id: str) -> str:
    return stream_id_for(str(bot.public_id), msg_id)


@pytest.fixture
def vector():
    return PLATFORM_VECTORS["wecom"]


def outbound(stream_id, text="", *, url=""):
    context = {"stream_id": stream_id, "response_url": url, "started_at": int(time.time())}
    return OutboundReply(
        key="1", text=text, recipient="zhangsan", is_group=True, reply_context=context
    )


class TestWeComBotContract(AdapterContract):
    platform = "wecom_bot"
    credentials = ROBOT_CREDENTIALS
    uses_token = False  # answers ride on the callbacks; response_url needs no token either
    answers_from_cache = True  # the stream each poll reads lives in the cache

    def message_request(self, bot, text, msg_id, **faults):
        return message_request(bot, text, msg_id, **faults)

    def malformed_request(self, bot):
        request = message_request(bot, "hi", "c-bad")
        request["data"] = b'{"encrypt": '
        return request

    def delivered_texts(self, fake_platforms, client, bot):
        return shown_answers(client, bot) + late_answers(fake_platforms)

    # --- the spec's worked example (platforms.md §1.5) -------------------------------------

    def test_it_reads_the_spec_vector_request(self, client, bot, vector, monkeypatch):
        bot.credentials = {"token": vector["token"], "encoding_aes_key": vector["encoding_aes_key"]}
        bot.save()
        monkeypatch.setattr(wecom, "MAX_CLOCK_SKEW_SECONDS", 10**10)  # the vector is from 2023
        sample = vector["smart_robot"]
        query = {
            "msg_signature": sample["msg_signature"],
            "timestamp": vector["timestamp"],
            "nonce": vector["nonce"],
        }
        response = client.post(
            with_query(bot.callback_path, query),
            sample["post_body"],
            content_type="application/json",
        )
        assert response.status_code == 200
        message = Message.objects.get()
        assert (message.content, message.sender, message.external_id) == (
            "你好",
            "zhangsan",
            "spec-msgid-0001",
        )
        assert message.conversation.chat_id == "CHATID"
        assert message.reply_context["response_url"].endswith("response_code=RC")
        assert stream_of(bot, response)["id"] == question_stream(bot, "spec-msgid-0001")

    def test_it_reproduces_the_spec_vector_reply(self, bot, vector):
        bot.credentials = {"token": vector["token"], "encoding_aes_key": vector["encoding_aes_key"]}
        sample = vector["smart_robot"]
        payload = stream_payload("stream-0001", "正在思考", False)
        assert payload == json.loads(sample["reply_plaintext_json"])
        sealed = bot.adapter.seal(
            payload,
            timestamp=vector["timestamp"],
            nonce=vector["nonce"],
            random_prefix=vector["random_prefix_ascii"].encode(),
        )
        assert sealed == sample["reply_body"]

    # --- handshake and first answer --------------------------------------------------------

    def test_it_answers_the_url_verification_with_the_plain_echo(self, client, bot):
        response = client.generic(**verification_request(bot, "echo-1700000000"))
        assert (response.status_code, response.content) == (200, b"echo-1700000000")

    def test_it_rejects_a_url_verification_signed_with_another_token(self, client, bot):
        request = verification_request(bot, "echo")
        bot.credentials = dict(ROBOT_CREDENTIALS, token="SomeoneElsesToken")
        bot.save()
        assert client.generic(**request).status_code == 403

    @pytest.mark.parametrize(
        ("language", "thinking"), [("zh-hans", "正在思考…"), ("en", "Thinking…")]
    )
    def test_it_answers_a_message_with_an_open_stream_saying_it_is_thinking(
        self, client, bot, language, thinking
    ):
        bot.tenant.language = language
        bot.tenant.save()
        response = client.generic(**message_request(bot, "VPN 连不上", "m-1"))
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert stream_of(bot, response) == {
            "id": question_stream(bot, "m-1"),
            "finish": False,
            "content": thinking,
        }
        assert Message.objects.get().status == Message.Status.QUEUED

    def test_it_signs_its_reply_with_msgsignature_over_its_own_timestamp_and_nonce(
        self, client, bot
    ):
        response = client.generic(**message_request(bot, "hi", "m-sig"))
        envelope = json.loads(response.content)
        assert set(envelope) == {"encrypt", "msgsignature", "timestamp", "nonce"}
        crypto = bot.adapter.crypto
        expected = crypto.signature(envelope["timestamp"], envelope["nonce"], envelope["encrypt"])
        assert envelope["msgsignature"] == expected
        assert json.loads(crypto.decrypt(envelope["encrypt"]))["msgtype"] == "stream"

    # --- streaming through refresh callbacks ------------------------------------------------

    def test_it_shows_the_answer_growing_on_each_refresh(
        self, client, bot, deliver, fake_ollama, monkeypatch
    ):
        fake_ollama.reply = "Restart the client, then sign in again."
        seen = []
        write = StreamStore.write

        def write_then_poll(store, stream_id, text, *, finished=False):
            write(store, stream_id, text, finished=finished)
            seen.append(stream_of(bot, client.generic(**refresh_request(bot, stream_id))))

        monkeypatch.setattr(StreamStore, "write", write_then_poll)
        monkeypatch.setattr(StreamLive, "interval", 0)
        deliver(client, message_request(bot, "VPN?", "m-live"))

        texts = [s["content"] for s in seen]
        assert len(seen) >= 3
        assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:]))
        assert not any(s["finish"] for s in seen[:-1])
        assert seen[-1] == {
            "id": question_stream(bot, "m-live"),
            "finish": True,
            "content": "Restart the client, then sign in again.",
        }

    def test_it_answers_a_refresh_with_the_text_so_far_then_the_finished_text(self, client, bot):
        stream_id = question_stream(bot, "m-2")
        reply = outbound(stream_id)
        live = bot.adapter.live(reply)
        assert live.start("Restart") == {"stream_id": stream_id}
        assert stream_of(bot, client.generic(**refresh_request(bot, stream_id))) == {
            "id": stream_id,
            "finish": False,
            "content": "Restart",
        }
        live.update("Restart the client")
        bot.adapter.send(outbound(stream_id, "Restart the client, then sign in."))
        assert stream_of(bot, client.generic(**refresh_request(bot, stream_id))) == {
            "id": stream_id,
            "finish": True,
            "content": "Restart the client, then sign in.",
        }

    @pytest.mark.parametrize("first_write", [None, ""])
    def test_it_answers_a_refresh_before_the_first_words_with_the_thinking_text(
        self, client, bot, first_write
    ):
        if first_write is not None:  # some models open their stream with an empty chunk
            bot.adapter.live(outbound("s-0")).start(first_write)
        stream = stream_of(bot, client.generic(**refresh_request(bot, "s-0")))
        assert (stream["finish"], stream["content"]) == (False, "Thinking…")

    def test_it_answers_a_refresh_with_at_most_one_query(
        self, client, bot, django_assert_max_num_queries
    ):
        bot.adapter.live(outbound("s-1")).start("partial")
        with django_assert_max_num_queries(1):
            response = client.generic(**refresh_request(bot, "s-1"))
        assert stream_of(bot, response)["content"] == "partial"

    def test_it_answers_a_retried_callback_with_the_same_stream_and_one_row(self, client, bot):
        first = stream_of(bot, client.generic(**message_request(bot, "hi", "m-retry")))
        bot.adapter.live(outbound(first["id"])).start("Hel")
        again = stream_of(bot, client.generic(**message_request(bot, "hi", "m-retry")))
        assert again == {"id": first["id"], "finish": False, "content": "Hel"}
        assert Message.objects.filter(role="user").count() == 1

    def test_it_finishes_the_stream_with_the_apology_when_the_model_fails(
        self, client, bot, deliver, fake_ollama, fake_platforms
    ):
        fake_ollama.fail_status = 404  # unknown model: permanent, no retry
        deliver(client, message_request(bot, "hi", "m-fail"))
        assert shown_answers(client, bot) == [
            "Sorry, I could not answer this time. Please try again in a moment."
        ]
        assert Message.objects.get(role="user").status == Message.Status.FAILED
        assert late_answers(fake_platforms) == []

    @pytest.mark.parametrize(
        "limit, notice",
        [
            ("user_rate_limit_per_minute", "faster than this assistant allows"),
            ("user_quota_messages_per_day", "Your daily quota of 1 message is"),
        ],
    )
    def test_it_finishes_every_refused_stream_with_its_notice(
        self, client, bot, deliver, fake_ollama, limit, notice
    ):
        setattr(bot.tenant, limit, 1)
        bot.tenant.save()
        for n in range(3):
            deliver(client, message_request(bot, f"q{n}", f"m-{limit}-{n}"))
        shown = shown_answers(client, bot)
        assert len(shown) == 3  # no stream is left "thinking"
        assert shown[0] == fake_ollama.reply
        assert all(notice in text for text in shown[1:])
        assert len(fake_ollama.requests) == 1

    # --- late and long answers: response_url -------------------------------------------------

    def test_it_answers_a_stale_stream_through_response_url(
        self, client, bot, deliver, fake_ollama, fake_platforms, monkeypatch
    ):
        monkeypatch.setattr(wecom_bot, "STREAM_WINDOW_SECONDS", -1)  # WeCom stopped polling
        fake_ollama.reply = "Late, but here."
        deliver(client, message_request(bot, "hi", "m-late"))
        assert late_answers(fake_platforms) == ["Late, but here."]
        [call] = fake_platforms.received("/cgi-bin/aibot/response")
        assert call.query["response_code"] == "RC-m-late"
        assert shown_answers(client, bot) == []  # the stream is left as WeCom last saw it
        assert Message.objects.get(role="assistant").delivered_at is not None

    def test_it_never_calls_a_response_url_outside_the_wecom_api(
        self, client, bot, deliver, fake_platforms, monkeypatch
    ):
        monkeypatch.setattr(wecom_bot, "STREAM_WINDOW_SECONDS", -1)
        foreign = "http://127.0.0.2:9/cgi-bin/aibot/response?response_code=RC"
        deliver(client, message_request(bot, "hi", "m-ssrf", response_url=foreign))
        assert fake_platforms.received("/cgi-bin/aibot/response") == []
        reply = Message.objects.get(role="assistant")
        assert reply.status == Message.Status.FAILED
        bot.refresh_from_db()
        assert "response_url" in bot.last_error

    def test_it_refuses_a_lookalike_host_without_calling_it(self, bot, settings, monkeypatch):
        settings.WECOM_API_BASE = "https://qyapi.weixin.qq.com"
        monkeypatch.setattr(wecom_bot, "STREAM_WINDOW_SECONDS", -1)
        monkeypatch.setattr(wecom_bot, "http_json", pytest.fail)
        reply = outbound("s", "hi", url="https://qyapi.weixin.qq.com.evil.example/x?a=1")
        with pytest.raises(DeliveryError) as error:
            bot.adapter.send(reply)
        assert error.value.permanent

    def test_it_sends_what_the_stream_cannot_hold_through_response_url(
        self, client, bot, fake_platforms
    ):
        text = "模型" * 5000  # 30,000 bytes without a natural break
        bot.adapter.send(outbound("s-long", text, url=response_url("m-long")))
        [late] = late_answers(fake_platforms)
        shown = StreamStore(str(bot.public_id)).read("s-long")
        assert shown["finished"]
        assert len(shown["text"].encode()) <= 20_000
        assert shown["text"] + late == text

    # --- what is asked --------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("bot_name", "content", "question"),
        [
            (None, "@运维小助手 VPN 连不上", "VPN 连不上"),
            (None, "@Any-Name\u2005hello", "hello"),
            (None, "no mention at all", "no mention at all"),
            ("IT Helpdesk", "@IT Helpdesk how do I reset it?", "how do I reset it?"),
            ("IT Helpdesk", "please @IT Helpdesk reset it", "please reset it"),
            ("Bot", "@Bot @Alice what does Alice think?", "@Alice what does Alice think?"),
            ("Renamed", "@OldName hello", "hello"),
        ],
    )
    def test_it_strips_the_robot_mention(self, client, bot, bot_name, content, question):
        if bot_name:
            bot.credentials = dict(ROBOT_CREDENTIALS, bot_name=bot_name)
            bot.save()
        response = client.generic(**message_request(bot, content, "m-at", mention=""))
        assert response.status_code == 200
        assert Message.objects.get().content == question

    def test_it_keeps_a_single_chat_in_its_own_conversation(self, client, bot):
        response = client.generic(
            **message_request(bot, "@not-a-mention hi", "m-1to1", group=False, sender="lisi")
        )
        assert stream_of(bot, response)["finish"] is False
        message = Message.objects.get()
        assert message.content == "@not-a-mention hi"  # nothing to strip outside groups
        assert message.reply_context["is_group"] is False
        assert Conversation.objects.get().chat_id == "lisi"

    def test_it_reads_the_text_items_of_a_mixed_message(self, client, bot):
        items = [
            {"msgtype": "text", "text": {"content": "@SpecBot what is in"}},
            {"msgtype": "image", "image": {"url": "https://example.invalid/a.png"}},
            {"msgtype": "text", "text": {"content": "this picture?"}},
        ]
        payload = robot_payload("m-mixed", "mixed", mixed={"msg_item": items})
        assert client.generic(**signed_request(bot, payload)).status_code == 200
        assert Message.objects.get().content == "what is in\nthis picture?"

    @pytest.mark.parametrize(
        ("payload", "kind"),
        [
            (
                robot_payload("m-img", "image", group=False, image={"url": "https://x.invalid/a"}),
                "image",
            ),
            (
                robot_payload("m-file", "file", group=False, file={"url": "https://x.invalid/f"}),
                "file",
            ),
            (
                robot_payload(
                    "m-pics",
                    "mixed",
                    mixed={
                        "msg_item": [{"msgtype": "image", "image": {"url": "https://x.invalid/a"}}]
                    },
                ),
                "image",
            ),
        ],
    )
    def test_it_tells_the_person_what_it_cannot_read(self, client, bot, deliver, payload, kind):
        response = deliver(client, signed_request(bot, payload))
        assert stream_of(bot, response)["finish"] is False  # the stream WeCom will poll
        row = Message.objects.get(role="user")
        assert (row.status, row.content) == ("ignored", f"[{kind}]")
        [notice] = shown_answers(client, bot)
        assert "only read text" in notice

    def test_it_answers_a_voice_message_by_its_transcript(self, client, bot):
        payload = robot_payload(
            "m-voice", "voice", group=False, voice={"content": "打印机怎么连？"}
        )
        assert client.generic(**signed_request(bot, payload)).status_code == 200
        assert Message.objects.get().content == "打印机怎么连？"

    def test_a_quoted_reply_carries_what_it_quotes(self, client, bot):
        quote = {"msgtype": "text", "text": {"content": "VPN 地址是 vpn.acme.cn\n端口 443"}}
        response = client.generic(**message_request(bot, "这个端口对吗？", "m-quote", quote=quote))
        assert response.status_code == 200
        assert Message.objects.get().content == (
            "> VPN 地址是 vpn.acme.cn\n> 端口 443\n\n这个端口对吗？"
        )

    @pytest.mark.parametrize(
        "payload",
        [
            robot_payload("m-ev", "event", event={"eventtype": "enter_chat"}),
            robot_payload("m-empty", "text", text={"content": "@SpecBot  "}),
        ],
    )
    def test_it_acknowledges_and_ignores_what_it_cannot_answer(self, client, bot, payload):
        response = client.generic(**signed_request(bot, payload))
        assert (response.status_code, response.content) == (200, b"")
        assert not Message.objects.exists()

    def test_it_refuses_a_callback_naming_another_robot(self, client, bot):
        response = client.generic(**message_request(bot, "hi", "m-other", aibotid="aibot-other"))
        assert response.status_code == 403
        assert not Message.objects.exists()

    @pytest.mark.parametrize(
        "payload",
        [
            {"msgtype": "text", "text": {"content": "no msgid"}, "from": {"userid": "u"}},
            {"msgid": "m", "msgtype": "text", "text": {"content": "no sender"}},
            {"msgid": "m", "msgtype": "text", "text": "not an object", "from": {"userid": "u"}},
            {"msgid": "m", "msgtype": "stream", "stream": {}},
        ],
    )
    def test_it_rejects_a_malformed_inner_message(self, client, bot, payload):
        assert client.generic(**signed_request(bot, payload)).status_code == 400
        assert not Message.objects.exists()

    def test_it_keeps_each_bots_streams_apart(self, tenant_a, bot):
        other = BotFactory(
            tenant=tenant_a, platform="wecom_bot", credentials=dict(ROBOT_CREDENTIALS)
        )
        bot.adapter.live(outbound("same-id")).start("bot's text")
        assert StreamStore(str(other.public_id)).read("same-id") is None
        assert question_stream(bot, "m") != question_stream(other, "m")
