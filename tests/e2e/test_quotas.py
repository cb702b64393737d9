"""Quotas under concurrency, with real worker processes: 20 questions sent at once against
a quota of 5 let exactly 5 reach the model, whichever worker takes which."""

import threading
from collections import Counter

import pytest
import requests

from conversations.models import Message, QuotaUse
from tests.callbacks.wecom import wecom_post, wecom_text_xml, with_query
from tests.e2e.worker import wait_for
from tests.factories import BotFactory, TenantFactory

pytestmark = pytest.mark.e2e

QUESTIONS = 20


def send_at_once(url: str, bot, senders: list[str]) -> list[int]:
    """POST one callback per sender, all released together; their status codes."""
    barrier = threading.Barrier(len(senders))
    statuses: list[int] = []

    def send(n: int, sender: str) -> None:
        xml = wecom_text_xml(f"question {n}", msg_id=f"q-{n}", sender=sender)
        query, body = wecom_post(bot.credentials, xml)
        barrier.wait()
        response = requests.post(
            url + with_query(bot.callback_path, query),
            data=body,
            headers={"Content-Type": "text/xml"},
            timeout=60,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=pair) for pair in enumerate(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.parametrize(
    ("quota", "senders", "notices"),
    [
        # One person: told once, whatever the other 14 refusals.
        ("user_quota_messages_per_day", ["zhangsan"] * QUESTIONS, 1),
        # The whole tenant: each of the 15 people refused is told once.
        ("quota_messages_per_day", [f"user{n}" for n in range(QUESTIONS)], QUESTIONS - 5),
    ],
)
def test_twenty_questions_at_once_against_a_quota_of_five_let_exactly_five_through(
    live_server, spawn_worker, fake_ollama, fake_platforms, quota, senders, notices
):
    tenant = TenantFactory(
        model_endpoint=fake_ollama.url,
        rate_limit_per_minute=0,
        user_rate_limit_per_minute=0,
        **{quota: 5},
    )
    bot = BotFactory(tenant=tenant, platform="wecom")

    assert send_at_once(live_server.url, bot, senders) == [200] * QUESTIONS
    # Started on a full queue, so that their four children admit questions side by side.
    workers = [spawn_worker(), spawn_worker()]

    questions = Message.objects.filter(role="user")

    def settled() -> bool:
        pending = questions.filter(status__in=["queued", "answering"]).exists()
        return questions.count() == QUESTIONS and not pending

    wait_for(settled, timeout=60, worker=workers[0])
    assert Counter(questions.values_list("status", flat=True)) == {
        "answered": 5,
        "quota_exceeded": QUESTIONS - 5,
    }

    def told() -> list[str]:
        """The answers and quota notices sent (a slow machine may add a queue notice)."""
        return [t for t in fake_platforms.wecom_texts() if not t.startswith("Queued")]

    wait_for(lambda: len(told()) == 5 + notices, worker=workers[0])
    assert sum("quota of 5 messages is used up" in text for text in told()) == notices
    assert len(fake_ollama.requests) == 5
    assert QuotaUse.objects.get(tenant=tenant, scope="tenant").messages == 5
