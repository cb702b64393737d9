"""/metrics adds up what the web and real worker processes counted, dead workers included."""

import os
from pathlib import Path

import pytest

from common.metrics import store
from conversations.models import Message
from tests.callbacks.wecom import wecom_post, wecom_text_xml, with_query
from tests.e2e.worker import wait_for
from tests.factories import BotFactory, TenantFactory
from tests.scrape import scrape

pytestmark = pytest.mark.e2e


def answered_questions() -> int:
    return Message.objects.filter(role="user", status="answered").count()


def test_web_and_worker_processes_add_up(client, spawn_worker, fake_ollama, fake_platforms):
    tenant = TenantFactory(slug="metrics-e2e", model_endpoint=fake_ollama.url)
    bot = BotFactory(tenant=tenant, platform="wecom")
    before = scrape(client)

    for n in (1, 2):  # one worker process answers each, and has exited before the scrape
        worker = spawn_worker()
        query, body = wecom_post(
            bot.credentials, wecom_text_xml(f"question {n}", msg_id=f"e2e-{n}")
        )
        response = client.post(with_query(bot.callback_path, query), body, content_type="text/xml")
        assert response.status_code == 200
        wait_for(lambda n=n: answered_questions() == n, worker=worker)
        worker.stop()

    change = scrape(client).since(before)
    assert change.value("im_callbacks_total", platform="wecom", outcome="accepted") == 2  # web
    assert change.value("im_messages_total", role="user", status="answered") == 2  # workers
    assert change.value("im_messages_total", role="assistant", status="answered") == 2
    assert change.value("im_model_seconds_count") == 2
    assert change.value("im_delivery_seconds_count", platform="wecom") == 2
    prompts = [q.prompt_tokens for q in Message.objects.filter(role="user")]
    assert change.value("im_tokens_total", tenant="metrics-e2e", kind="prompt") == sum(prompts)
    # Written by processes other than this one (the workers' children), in the one directory.
    writers = {
        path.stem.partition("_")[2]
        for path in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db")
    }
    assert len(writers - {store.process_identifier()}) >= 2
