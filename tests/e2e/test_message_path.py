"""One message along the whole path: signed callback → database → broker → real worker
process → fake Ollama → fake platform API."""

import pytest

from conversations.models import Message
from tests.callbacks.wecom import wecom_post, wecom_text_xml, with_query
from tests.e2e.worker import answered, wait_for
from tests.factories import BotFactory, TenantFactory

pytestmark = pytest.mark.e2e


def test_a_wecom_message_is_answered_by_a_real_worker(client, worker, fake_ollama, fake_platforms):
    tenant = TenantFactory(
        model="gemma:2b",
        system_prompt="You are ACME's IT helpdesk.",
        model_endpoint=fake_ollama.url,
    )
    bot = BotFactory(tenant=tenant, platform="wecom")
    fake_ollama.reply = "Open Settings, then VPN, then Reconnect."

    query, body = wecom_post(bot.credentials, wecom_text_xml("VPN 连不上", sender="wangwu"))
    response = client.post(with_query(bot.callback_path, query), body, content_type="text/xml")
    assert (response.status_code, response.content) == (200, b"")

    [sent] = wait_for(lambda: fake_platforms.messages("wecom"), worker=worker)
    assert sent["touser"] == "wangwu"
    assert sent["markdown"]["content"] == "Open Settings, then VPN, then Reconnect."
    [request] = fake_ollama.requests
    assert request["model"] == "gemma:2b"
    assert request["messages"][0] == {"role": "system", "content": "You are ACME's IT helpdesk."}
    assert request["messages"][-1] == {"role": "user", "content": "VPN 连不上"}
    [reply] = answered(worker=worker)
    assert reply.status == Message.Status.ANSWERED and reply.delivered_at is not None
