"""One Feishu message along the whole path: encrypted, signed event → database → broker →
real worker process → fake Ollama → streaming card on the fake Feishu API."""

import json

import pytest

from conversations.models import Message
from tests.callbacks.feishu import SENDER_OPEN_ID, message_request
from tests.e2e.worker import wait_for
from tests.factories import BotFactory, TenantFactory

pytestmark = pytest.mark.e2e

CREDENTIALS = {
    "app_id": "cli_e2e0000000000001",
    "app_secret": "feishu-e2e-secret",
    "verification_token": "FeishuE2EVerifyToken",
    "encrypt_key": "FeishuE2EEncryptKey",
    "bot_open_id": "ou_e2e_bot",
}


def test_a_feishu_message_is_answered_by_a_real_worker(client, worker, fake_ollama, fake_platforms):
    tenant = TenantFactory(model="qwen2:1.5b", model_endpoint=fake_ollama.url)
    bot = BotFactory(tenant=tenant, platform="feishu", credentials=dict(CREDENTIALS))
    fake_ollama.reply = "打开设置，然后点击 VPN，再点重新连接。"

    request = message_request(bot, "VPN 连不上", "om_e2e_1", group=True)
    response = client.generic(**request)
    assert (response.status_code, json.loads(response.content)) == (200, {"msg": "success"})

    [question] = Message.objects.filter(role="user")
    assert (question.content, question.sender) == ("VPN 连不上", SENDER_OPEN_ID)
    wait_for(
        lambda: Message.objects.filter(role="assistant", status="answered").exists(), worker=worker
    )
    assert fake_platforms.feishu_chat() == [fake_ollama.reply]
    [sent] = fake_platforms.received("/open-apis/im/v1/messages/om_e2e_1/reply")
    assert sent.json["msg_type"] == "interactive"
    [request] = fake_ollama.requests
    assert request["messages"][-1] == {"role": "user", "content": "VPN 连不上"}
