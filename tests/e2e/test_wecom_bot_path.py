"""A smart-robot message along the whole path: signed callback → database → broker → real
worker process → fake Ollama → cache ← stream-refresh callbacks, polled until `finish`."""

import pytest
from django.conf import settings

from conversations.models import Message
from tests.callbacks.wecom_bot import (
    ROBOT_CREDENTIALS,
    message_request,
    refresh_request,
    stream_of,
)
from tests.e2e.worker import wait_for
from tests.factories import BotFactory, TenantFactory

# The worker writes the stream text to the cache and this process reads it back, so both
# must share one: Redis (CI) or files. A locmem cache lives inside one process only.
LOCMEM = settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(LOCMEM, reason="CACHE_URL=locmem:// is not shared with a worker process"),
]


def test_a_robot_answer_fills_in_through_refresh_callbacks(client, worker, fake_ollama):
    tenant = TenantFactory(model="gemma:2b", model_endpoint=fake_ollama.url)
    bot = BotFactory(tenant=tenant, platform="wecom_bot", credentials=dict(ROBOT_CREDENTIALS))
    answer = "Open Settings, then VPN, then Reconnect."
    fake_ollama.reply = answer
    fake_ollama.chunk_delay = 0.2  # slow enough for polls to catch the text half-written

    first = stream_of(bot, client.generic(**message_request(bot, "VPN 连不上", "e2e-robot-1")))
    assert (first["finish"], first["content"]) == (False, "Thinking…")

    seen: list[dict] = []

    def finished() -> bool:
        seen.append(stream_of(bot, client.generic(**refresh_request(bot, first["id"]))))
        return seen[-1]["finish"]

    wait_for(finished, worker=worker)
    assert seen[-1] == {"id": first["id"], "finish": True, "content": answer}
    # Before `finish`, a poll may also see the whole text: the last live write precedes send.
    partial = {s["content"] for s in seen[:-1]} - {"Thinking…", answer}
    assert partial, f"no refresh saw the answer half-written: {seen}"
    assert all(answer.startswith(text) for text in partial), seen
    [request] = fake_ollama.requests
    assert request["messages"][-1] == {"role": "user", "content": "VPN 连不上"}
    question = wait_for(lambda: Message.objects.filter(role="user", status="answered").first())
    assert wait_for(lambda: Message.objects.get(reply_to=question).delivered_at)
