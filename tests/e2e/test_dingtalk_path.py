"""One DingTalk group message along the whole path: signed callback → database → broker →
real worker process → fake Ollama → the callback's session webhook on the fake DingTalk."""

import pytest

from conversations.models import Message
from tests.callbacks.dingtalk import DINGTALK_CREDENTIALS, message_request
from tests.e2e.worker import answered, wait_for
from tests.factories import BotFactory, TenantFactory

pytestmark = pytest.mark.e2e


def test_a_dingtalk_message_is_answered_by_a_real_worker(
    client, worker, fake_ollama, fake_platforms
):
    tenant = TenantFactory(model="qwen2:1.5b", model_endpoint=fake_ollama.url)
    bot = BotFactory(
        tenant=tenant, platform="dingtalk", name="it-helpdesk", credentials=DINGTALK_CREDENTIALS
    )
    fake_ollama.reply = "打开设置，选择 VPN，然后重新连接。"

    request = message_request(bot, "@it-helpdesk VPN 连不上", "msg-e2e-1", group=True)
    response = client.generic(**request)
    assert (response.status_code, response.json()) == (200, {})

    [sent] = wait_for(lambda: fake_platforms.messages("dingtalk"), worker=worker)
    assert sent["markdown"]["text"] == "@zhangsan\n\n打开设置，选择 VPN，然后重新连接。"
    assert sent["at"]["atUserIds"] == ["zhangsan"]
    [call] = fake_platforms.received("/robot/sendBySession")
    assert call.query == {"session": "s-msg-e2e-1"}
    [request_to_model] = fake_ollama.requests
    assert request_to_model["messages"][-1] == {"role": "user", "content": "VPN 连不上"}
    [reply] = answered(worker=worker)
    assert reply.status == Message.Status.ANSWERED and reply.delivered_at is not None
