import pytest
from django.db import connection

from channels_im.platforms.base import OutboundReply
from conversations.models import Message
from tests.callbacks.wecom import message_request, wecom_post, wecom_text_xml, with_query
from tests.channels_im.adapter_contract import AdapterContract
from tests.factories import WECOM_CREDENTIALS, BotFactory

pytestmark = pytest.mark.django_db

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<xml><Encrypt>&lol3;</Encrypt></xml>"
)


def post(client, bot, query, body):
    return client.post(with_query(bot.callback_path, query), body, content_type="text/xml")


def send_text(client, bot, content="你好", **kwargs):
    query, body = wecom_post(bot.credentials, wecom_text_xml(content, **kwargs))
    return post(client, bot, query, body)


def test_it_answers_the_url_verification_with_the_decrypted_echo(client, wecom_bot):
    from channels_im.platforms.wecom.crypto import WxBizMsgCrypt

    creds = wecom_bot.credentials
    crypt = WxBizMsgCrypt(creds["token"], creds["encoding_aes_key"], creds["corp_id"])
    echostr = crypt.encrypt("echo-42")
    query = {"timestamp": "9999999999", "nonce": "n"}
    import time

    query["timestamp"] = str(int(time.time()))
    query["msg_signature"] = crypt.signature(query["timestamp"], "n", echostr)
    query["echostr"] = echostr
    response = client.get(with_query(wecom_bot.callback_path, query))
    assert response.status_code == 200
    assert response.content == b"echo-42"


def test_it_stores_a_text_message_and_acknowledges_with_an_empty_body(client, wecom_bot):
    response = send_text(client, wecom_bot, "How do I reset my VPN?", msg_id="7001")
    assert response.status_code == 200
    assert response.content == b""
    message = Message.objects.get()
    assert (message.content, message.external_id, message.sender) == (
        "How do I reset my VPN?",
        "7001",
        "zhangsan",
    )
    assert message.status == Message.Status.QUEUED
    assert message.tenant_id == wecom_bot.tenant_id


def test_it_answers_through_message_send(
    client, wecom_bot, fake_platforms, fake_ollama, eager_celery, django_capture_on_commit_callbacks
):
    fake_ollama.reply = "Restart the client, then sign in again."
    with django_capture_on_commit_callbacks(execute=True):
        assert send_text(client, wecom_bot, "VPN?", sender="lisi").status_code == 200
    [sent] = fake_platforms.messages("wecom")
    assert sent["touser"] == "lisi"
    assert sent["agentid"] == 1000002
    assert sent["markdown"]["content"] == "Restart the client, then sign in again."
    question = Message.objects.get(role="user")
    assert question.status == Message.Status.ANSWERED
    assert question.reply.delivered_at is not None


def test_it_rejects_a_forged_signature_and_stores_nothing(client, wecom_bot):
    query, body = wecom_post(wecom_bot.credentials, wecom_text_xml("hi"))
    query["msg_signature"] = "0" * 40
    assert post(client, wecom_bot, query, body).status_code == 403
    assert not Message.objects.exists()


def test_it_rejects_a_stale_timestamp(client, wecom_bot):
    import time

    query, body = wecom_post(
        wecom_bot.credentials, wecom_text_xml("hi"), timestamp=int(time.time()) - 7200
    )
    assert post(client, wecom_bot, query, body).status_code == 403
    assert not Message.objects.exists()


def test_it_rejects_a_message_signed_with_another_token(client, wecom_bot):
    other = dict(wecom_bot.credentials, token="SomeoneElsesToken")
    query, body = wecom_post(other, wecom_text_xml("hi"))
    assert post(client, wecom_bot, query, body).status_code == 403


@pytest.mark.parametrize("case", ["tampered", "wrong_corp_id"])
def test_it_rejects_undecryptable_ciphertext_with_400(client, wecom_bot, case):
    kwargs = {"tamper": True} if case == "tampered" else {"receive_id": "wwSomeOtherCorp"}
    query, body = wecom_post(wecom_bot.credentials, wecom_text_xml("hi"), **kwargs)
    assert post(client, wecom_bot, query, body).status_code == 400
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><Encrypt>",
        b"not xml at all",
        b"",
        BILLION_LAUGHS.encode(),
        b"<xml><NoEncrypt/></xml>",
    ],
)
def test_it_rejects_malformed_or_hostile_xml_with_400(client, wecom_bot, body):
    query, _ = wecom_post(wecom_bot.credentials, wecom_text_xml("hi"))
    assert post(client, wecom_bot, query, body).status_code == 400
    assert not Message.objects.exists()


def test_it_rejects_a_malformed_inner_message(client, wecom_bot):
    query, body = wecom_post(wecom_bot.credentials, "<xml><MsgType>text</MsgType>")
    assert post(client, wecom_bot, query, body).status_code == 400


@pytest.mark.parametrize("msg_type", ["image", "voice", "video", "file", "location", "link"])
def test_it_tells_the_person_what_it_cannot_read(
    client, wecom_bot, fake_platforms, eager_celery, django_capture_on_commit_callbacks, msg_type
):
    query, body = wecom_post(wecom_bot.credentials, wecom_text_xml("", msg_type=msg_type))
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, wecom_bot, query, body)
    assert (response.status_code, response.content) == (200, b"")
    row = Message.objects.get(role="user")
    assert (row.status, row.content) == ("ignored", f"[{msg_type}]")
    [notice] = fake_platforms.messages("wecom")
    assert "only read text" in notice["markdown"]["content"]


def test_it_answers_a_voice_message_by_its_transcript(client, wecom_bot):
    xml = wecom_text_xml("", msg_type="voice").replace(
        "<Content><![CDATA[]]></Content>", "<Recognition><![CDATA[打印机怎么连？]]></Recognition>"
    )
    response = post(client, wecom_bot, *wecom_post(wecom_bot.credentials, xml))
    assert response.status_code == 200
    row = Message.objects.get()
    assert (row.status, row.content) == ("queued", "打印机怎么连？")


def test_it_acknowledges_and_ignores_events(client, wecom_bot):
    xml = (
        "<xml><ToUserName><![CDATA[ww1234567890abcdef]]></ToUserName>"
        "<FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1700000000</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[enter_agent]]></Event>"
        "<AgentID>1000002</AgentID></xml>"
    )
    response = post(client, wecom_bot, *wecom_post(wecom_bot.credentials, xml))
    assert (response.status_code, response.content) == (200, b"")
    assert not Message.objects.exists()


def test_it_answers_a_duplicate_msgid_once(
    client, wecom_bot, fake_platforms, fake_ollama, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert send_text(client, wecom_bot, "hello", msg_id="42").status_code == 200
    assert Message.objects.filter(role="user").count() == 1
    assert len(fake_platforms.messages("wecom")) == 1
    assert len(fake_ollama.requests) == 1


@pytest.mark.parametrize("change", ["unknown", "bot_disabled", "tenant_disabled", "wrong_platform"])
def test_it_answers_404_for_an_unknown_or_disabled_bot(client, wecom_bot, change):
    query, body = wecom_post(wecom_bot.credentials, wecom_text_xml("hi"))
    path = wecom_bot.callback_path
    if change == "unknown":
        path = path.replace(str(wecom_bot.public_id), "00000000-0000-4000-8000-000000000000")
    elif change == "bot_disabled":
        wecom_bot.is_active = False
        wecom_bot.save()
    elif change == "tenant_disabled":
        wecom_bot.tenant.is_active = False
        wecom_bot.tenant.save()
    else:
        path = path.replace("/wecom/", "/feishu/")
    response = client.post(with_query(path, query), body, content_type="text/xml")
    assert response.status_code == 404
    assert not Message.objects.exists()


def test_it_keeps_credentials_encrypted_at_rest(wecom_bot):
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM channels_im_bot WHERE id = %s", [wecom_bot.pk])
        [stored] = cursor.fetchone()
    assert stored.startswith("enc1:")
    assert wecom_bot.credentials["secret"] not in stored


def reply(text, recipient="zhangsan"):
    return OutboundReply(key="1", text=text, recipient=recipient, is_group=False, reply_context={})


def test_it_refreshes_an_expired_token_once_and_resends(fake_platforms, tenant_a):
    bot = BotFactory(tenant=tenant_a)
    bot.adapter.send(reply("first"))
    fake_platforms.expire_all_tokens()
    bot.adapter.send(reply("second"))
    assert fake_platforms.wecom_texts() == ["first", "second"]
    assert len(fake_platforms.received("/cgi-bin/gettoken")) == 2


def test_it_caches_the_access_token(fake_platforms, tenant_a):
    bot = BotFactory(tenant=tenant_a)
    for text in ("a", "b", "c"):
        bot.adapter.send(reply(text))
    assert len(fake_platforms.received("/cgi-bin/gettoken")) == 1


def test_it_splits_long_answers_at_2048_bytes_without_breaking_characters(fake_platforms, tenant_a):
    bot = BotFactory(tenant=tenant_a)
    text = "模型" * 1500  # 9000 bytes of 3-byte characters, no natural break
    bot.adapter.send(reply(text))
    parts = fake_platforms.wecom_texts()
    assert len(parts) == 5
    assert all(len(p.encode()) <= 2048 for p in parts)
    assert "".join(parts) == text


def test_it_reports_a_permanent_platform_error(fake_platforms, tenant_a):
    from channels_im.platforms.base import DeliveryError

    bot = BotFactory(tenant=tenant_a)
    fake_platforms.fail_next = [
        (200, {"errcode": 0, "access_token": "t", "expires_in": 7200}),
        (200, {"errcode": 81013, "errmsg": "user not found"}),
    ]
    with pytest.raises(DeliveryError) as error:
        bot.adapter.send(reply("hi", recipient="nobody"))
    assert error.value.permanent
    assert error.value.code == 81013


class TestWeComAppContract(AdapterContract):
    json_bodies = False  # XML: a NUL or a lone surrogate makes the body unreadable (400)
    platform = "wecom"
    credentials = WECOM_CREDENTIALS

    def message_request(self, bot, text, msg_id, **faults):
        return message_request(bot, text, msg_id, **faults)

    def malformed_request(self, bot):
        query, _ = wecom_post(bot.credentials, wecom_text_xml("hi"))
        return {
            "method": "POST",
            "path": with_query(bot.callback_path, query),
            "data": b"<xml><Encrypt>oops",
            "content_type": "text/xml",
        }

    def delivered_texts(self, fake_platforms, client, bot):
        return fake_platforms.wecom_texts()


def test_it_answers_503_when_the_database_is_down(client, wecom_bot, monkeypatch):
    from django.db import OperationalError

    import channels_im.views

    def database_down(bot, inbound):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(channels_im.views, "receive", database_down)
    assert send_text(client, wecom_bot).status_code == 503


@pytest.mark.parametrize("accept", ["text/xml", "text/html", "application/json"])
def test_the_platforms_accept_header_never_changes_the_ack(client, wecom_bot, accept):
    query, body = wecom_post(wecom_bot.credentials, wecom_text_xml("hi", msg_id="accept-1"))
    query["format"] = "xml"
    response = client.post(
        with_query(wecom_bot.callback_path, query),
        body,
        content_type="text/xml",
        HTTP_ACCEPT=accept,
    )
    assert (response.status_code, response.content) == (200, b"")
