"""A tenant's fallback model: asked when the model fails for good, and named on the row."""

import itertools

import pytest

from channels_im.platforms.base import InboundMessage
from conversations.models import Admission, Message
from conversations.services import receive
from tests.fakes.ollama import FakeOllama

pytestmark = pytest.mark.django_db

NOWHERE = "http://127.0.0.1:9"  # nothing listens there
IDS = itertools.count()


@pytest.fixture
def fallback_server(settings):
    with FakeOllama() as server:
        server.reply = "The fallback's answer."
        yield server


@pytest.fixture
def ask(wecom_bot, fake_platforms, eager_celery, django_capture_on_commit_callbacks):
    """Receive a question and run its tasks to the end; the question's row after."""

    def run(text="hello"):
        external_id = f"m{next(IDS)}"
        inbound = InboundMessage(external_id, sender="zhangsan", chat="zhangsan", text=text)
        with django_capture_on_commit_callbacks(execute=True):
            question = receive(wecom_bot, inbound)
        return Message.objects.get(pk=question.pk)

    return run


@pytest.fixture
def tenant(wecom_bot, fallback_server):
    tenant = wecom_bot.tenant
    tenant.fallback_model_endpoint = fallback_server.url
    tenant.fallback_model = "gemma:2b"
    tenant.save()
    return tenant


def test_an_unknown_model_is_answered_by_the_fallback_and_the_row_says_so(
    ask, tenant, fake_ollama, fallback_server, fake_platforms, wecom_bot
):
    fake_ollama.known_models = {"gemma:2b"}
    question = ask()
    assert question.status == Message.Status.ANSWERED
    assert (question.model, question.endpoint, question.fallback) == (
        "gemma:2b",
        fallback_server.url,
        True,
    )
    assert [r["model"] for r in fake_ollama.requests] == ["qwen2:1.5b"]  # not retried
    assert [r["model"] for r in fallback_server.requests] == ["gemma:2b"]
    assert fake_platforms.wecom_texts() == ["The fallback's answer."]
    wecom_bot.refresh_from_db()
    assert "404" in wecom_bot.last_error  # the primary's failure is not hidden
    assert not Admission.objects.exists()


def test_an_endpoint_that_stays_down_is_retried_then_replaced(
    ask, tenant, fallback_server, fake_platforms, settings
):
    settings.OLLAMA_MAX_RETRIES = 1
    tenant.model_endpoint = NOWHERE
    tenant.save()
    question = ask()
    assert (question.status, question.fallback, question.attempts) == ("answered", True, 1)
    assert question.endpoint == fallback_server.url
    assert fake_platforms.wecom_texts() == ["The fallback's answer."]


def test_a_failure_that_a_retry_may_cure_stays_with_the_model(
    ask, tenant, fake_ollama, fallback_server
):
    fake_ollama.fail_status, fake_ollama.fail_times = 503, 1
    question = ask()
    assert (question.status, question.fallback, question.model) == ("answered", False, "qwen2:1.5b")
    assert question.endpoint == fake_ollama.url
    assert fallback_server.requests == []


def test_the_same_endpoint_with_another_model_is_a_fallback_too(
    ask, wecom_bot, fake_ollama, fake_platforms
):
    tenant = wecom_bot.tenant
    tenant.fallback_model = "gemma:2b"
    tenant.save()
    fake_ollama.known_models = {"gemma:2b"}
    question = ask()
    assert (question.status, question.model, question.endpoint) == (
        "answered",
        "gemma:2b",
        fake_ollama.url,
    )


def test_a_failing_fallback_ends_in_the_apology_and_the_row_names_it(
    ask, tenant, fake_ollama, fallback_server, fake_platforms
):
    fake_ollama.known_models = fallback_server.known_models = {"llama3"}
    question = ask()
    assert (question.status, question.fallback) == ("failed", True)
    assert (question.model, question.endpoint) == ("gemma:2b", fallback_server.url)
    assert "404" in question.error
    [apology] = fake_platforms.wecom_texts()
    assert apology.startswith("Sorry")


def test_a_question_the_model_cannot_take_is_not_handed_on(
    ask, tenant, fake_ollama, fallback_server, fake_platforms
):
    """Too long for the model's context: the fallback would refuse it too."""
    tenant.num_ctx = 1100  # room for the answer and hardly a question
    tenant.save()
    question = ask("word " * 400)
    assert (question.status, question.fallback) == ("failed", False)
    assert fake_ollama.requests == fallback_server.requests == []


def test_without_a_fallback_the_person_gets_the_apology(
    ask, wecom_bot, fake_ollama, fake_platforms
):
    fake_ollama.known_models = {"gemma:2b"}
    question = ask()
    assert (question.status, question.fallback, question.endpoint) == (
        "failed",
        False,
        fake_ollama.url,
    )
    assert fake_platforms.wecom_texts()[0].startswith("Sorry")
