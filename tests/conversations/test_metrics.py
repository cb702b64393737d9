"""What the reply pipeline counts and times, read back from /metrics."""

import itertools

import pytest

from channels_im.platforms.base import InboundMessage
from conversations.models import Message
from conversations.services import receive
from conversations.tasks import sweep_stuck_messages
from tests.scrape import Scrape, scrape

pytestmark = pytest.mark.django_db

MESSAGE_IDS = itertools.count(1)


@pytest.fixture
def run(client, wecom_bot, fake_platforms, eager_celery, django_capture_on_commit_callbacks):
    """Receive messages as the callback would, run their tasks to the end, and return
    what /metrics changed by meanwhile."""

    def run_all(*texts: str, sender: str = "zhangsan", senders: tuple[str, ...] = ()) -> Scrape:
        before = scrape(client)
        for text, who in zip(texts, senders or [sender] * len(texts), strict=True):
            inbound = InboundMessage(
                external_id=f"metrics-{next(MESSAGE_IDS)}", sender=who, chat=who, text=text
            )
            with django_capture_on_commit_callbacks(execute=True):
                receive(wecom_bot, inbound)
        return scrape(client).since(before)

    return run_all


def statuses(change: Scrape) -> dict[tuple[str, str], float]:
    """im_messages_total's change by (role, status)."""
    return {
        (dict(labels)["role"], dict(labels)["status"]): value
        for (name, labels), value in change.samples.items()
        if name == "im_messages_total"
    }


def test_an_answered_question_is_counted_timed_and_its_tokens_added(run):
    change = run("hello")

    question = Message.objects.get(role="user")
    assert statuses(change) == {("user", "answered"): 1, ("assistant", "answered"): 1}
    assert change.value("im_queue_wait_seconds_count", queue="inference") == 1
    assert change.value("im_model_first_token_seconds_count") == 1
    assert change.value("im_model_seconds_count") == 1
    assert change.value("im_delivery_seconds_count", platform="wecom") == 1
    tokens = {
        kind: change.value("im_tokens_total", tenant="tenant-a", kind=kind)
        for kind in ("prompt", "completion")
    }
    assert tokens == {"prompt": question.prompt_tokens, "completion": question.completion_tokens}
    assert question.prompt_tokens and question.completion_tokens


@pytest.mark.parametrize(("status", "permanence"), [(503, "transient"), (404, "permanent")])
def test_model_errors_are_counted_by_endpoint_and_permanence(
    run, fake_ollama, settings, status, permanence
):
    settings.OLLAMA_MAX_RETRIES = 0
    fake_ollama.fail_status = status
    change = run("hello")

    endpoint = fake_ollama.url.removeprefix("http://")
    assert change.value("im_model_errors_total", endpoint=endpoint, permanence=permanence) == 1
    # The question failed; the apology that answers it was sent.
    assert statuses(change) == {("user", "failed"): 1, ("assistant", "answered"): 1}
    assert change.value("im_model_seconds_count") == 0


def test_a_transient_delivery_failure_is_counted_then_retried(run, fake_platforms):
    fake_platforms.fail_next = [(502, {"errmsg": "bad gateway"})]
    change = run("hello")

    assert change.value("im_delivery_failures_total", platform="wecom", permanence="transient") == 1
    # The answer waited in the delivery queue, then went out.
    assert change.value("im_queue_wait_seconds_count", queue="delivery") == 1
    assert change.value("im_delivery_seconds_count", platform="wecom") == 1
    assert statuses(change) == {("user", "answered"): 1, ("assistant", "answered"): 1}


def test_a_permanent_delivery_failure_fails_answer_and_question(run, fake_platforms):
    fake_platforms.fail_next = [
        (200, {"errcode": 0, "access_token": "t", "expires_in": 7200}),
        (200, {"errcode": 60020, "errmsg": "not allow to access"}),
    ]
    change = run("hello")

    assert change.value("im_delivery_failures_total", platform="wecom", permanence="permanent") == 1
    assert change.value("im_delivery_seconds_count", platform="wecom") == 0
    assert statuses(change) == {("user", "failed"): 1, ("assistant", "failed"): 1}


def test_refusals_are_counted_by_tenant_and_which_limit(run, wecom_bot):
    wecom_bot.tenant.user_rate_limit_per_minute = 1
    wecom_bot.tenant.rate_limit_per_minute = 2
    wecom_bot.tenant.save()
    change = run("one", "two", "three", senders=("noisy", "noisy", "quiet"))

    refused = {
        reason: change.value("im_refused_messages_total", tenant="tenant-a", reason=reason)
        for reason in ("rate_limit_user", "rate_limit_tenant")
    }
    # The second from "noisy" is over their own limit, which spares the tenant's; the
    # third message is the tenant's third.
    assert refused == {"rate_limit_user": 1, "rate_limit_tenant": 0}
    assert statuses(change)[("user", "rate_limited")] == 1
    change = run("four", sender="other")
    assert (
        change.value("im_refused_messages_total", tenant="tenant-a", reason="rate_limit_tenant")
        == 1
    )


def test_a_command_is_counted_as_ignored_and_its_reply_as_answered(run):
    change = run("/help")
    assert statuses(change) == {("user", "ignored"): 1, ("assistant", "answered"): 1}
    assert change.value("im_model_seconds_count") == 0


def test_rows_the_sweep_finds_are_counted(
    client, wecom_bot, settings, eager_celery, fake_platforms
):
    settings.IM_STUCK_AFTER_SECONDS = 0
    for n in range(2):  # stored, but their tasks never reached a worker
        receive(wecom_bot, InboundMessage(external_id=f"lost-{n}", sender="u", chat="u", text="hi"))
    before = scrape(client)
    sweep_stuck_messages.apply()
    assert scrape(client).since(before).value("im_stuck_rows_total", role="user") == 2
