"""What real models do, through the whole worker: reasoning, cut answers, questions too
long for the context, missing usage, and one time budget per question."""

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_im.platforms.base import InboundMessage
from conversations import llm
from conversations.models import Message
from conversations.services import receive

pytestmark = pytest.mark.django_db

THOUGHTS = "The user asks about printers. Third floor has two."
ANSWER = "Use the printer by the lifts."


@pytest.fixture(autouse=True)
def _fresh_think_memory():
    llm._NO_THINK.clear()


@pytest.fixture
def ask(wecom_bot, fake_platforms, eager_celery, django_capture_on_commit_callbacks):
    """Receive a message as the callback would and run its tasks to the end."""
    counter = iter(range(1000))

    def run(text="Which printer?", **fields):
        inbound = InboundMessage(
            external_id=f"m{next(counter)}", sender="zhangsan", chat="zhangsan", text=text
        )
        with django_capture_on_commit_callbacks() as enqueued:
            question = receive(wecom_bot, inbound)
        # What the row looked like when the worker took it (how long it had waited …).
        Message.objects.filter(pk=question.pk).update(**fields)
        with django_capture_on_commit_callbacks(execute=True):
            for task in enqueued:
                task()
        question.refresh_from_db()
        return question

    return run


def sent(fake_platforms) -> list[str]:
    return fake_platforms.wecom_texts()


def test_a_reasoning_models_thoughts_are_never_shown_stored_or_fed_back(
    ask, fake_ollama, fake_platforms
):
    fake_ollama.reply, fake_ollama.thinking = ANSWER, THOUGHTS
    first = ask()
    ask("And the second one?")
    assert sent(fake_platforms) == [ANSWER, ANSWER]
    assert Message.objects.get(reply_to=first).content == ANSWER
    history = fake_ollama.requests[-1]["messages"][1:]  # after the system prompt
    assert [m["content"] for m in history] == ["Which printer?", ANSWER, "And the second one?"]


def test_inline_thoughts_of_a_model_that_cannot_think_apart_are_removed_too(
    ask, fake_ollama, fake_platforms
):
    fake_ollama.reply, fake_ollama.thinking, fake_ollama.can_think = ANSWER, THOUGHTS, False
    ask()
    assert sent(fake_platforms) == [ANSWER]


def test_a_model_that_thinks_away_its_whole_budget_gets_one_clear_message(
    ask, fake_ollama, fake_platforms, settings
):
    settings.OLLAMA_NUM_PREDICT = 5
    fake_ollama.reply, fake_ollama.thinking = ANSWER, THOUGHTS
    question = ask()
    assert len(fake_ollama.requests) == 1  # not retried: it would think the same again
    [notice] = sent(fake_platforms)
    assert "thinking" in notice
    assert (question.status, question.attempts) == ("failed", 1)


def test_an_answer_cut_at_the_length_limit_says_so_and_the_row_says_why(
    ask, fake_ollama, fake_platforms, settings
):
    settings.OLLAMA_NUM_PREDICT = 3
    fake_ollama.reply = "one two three four five"
    question = ask()
    [shown] = sent(fake_platforms)
    assert shown.startswith("one two three") and shown.endswith(
        "(The answer was cut off at the length limit.)"
    )
    assert (question.status, question.done_reason) == ("answered", "length")


def test_a_question_too_long_for_the_model_is_refused_without_a_call(
    ask, fake_ollama, fake_platforms, wecom_bot
):
    wecom_bot.tenant.num_ctx = 4096
    wecom_bot.tenant.save()
    question = ask("报告" * 3150)  # a pasted document of 6,300 characters
    assert fake_ollama.requests == []
    [notice] = sent(fake_platforms)
    assert "too long for this model" in notice
    assert (question.status, question.attempts) == ("failed", 1)


def test_without_usage_from_the_endpoint_tokens_are_estimated_and_marked(
    ask, fake_ollama, wecom_bot
):
    wecom_bot.tenant.model_endpoint = f"{fake_ollama.url}/v1"
    wecom_bot.tenant.save()
    fake_ollama.usage = False
    question = ask()
    assert question.prompt_tokens > 0 and question.completion_tokens > 0
    assert question.tokens_estimated is True


def test_with_usage_from_the_endpoint_tokens_are_the_models(ask, fake_ollama, wecom_bot):
    wecom_bot.tenant.model_endpoint = f"{fake_ollama.url}/v1"
    wecom_bot.tenant.save()
    question = ask()
    assert question.completion_tokens == len(fake_ollama.reply.split())
    assert question.tokens_estimated is False


def test_a_question_whose_budget_ran_out_in_the_queue_gets_the_apology_at_once(
    ask, fake_ollama, fake_platforms, settings
):
    settings.IM_ANSWER_BUDGET_SECONDS = 60
    question = ask(created_at=timezone.now() - timedelta(seconds=61))
    assert fake_ollama.requests == []
    assert question.status == "failed" and "60 s" in question.error
    assert sent(fake_platforms)[0].startswith("Sorry")


def test_the_budget_ends_a_slow_answer_keeping_what_it_wrote(
    ask, fake_ollama, fake_platforms, settings
):
    settings.IM_ANSWER_BUDGET_SECONDS = 30
    fake_ollama.reply, fake_ollama.chunk_delay = " ".join(["word"] * 40), 0.1
    question = ask(created_at=timezone.now() - timedelta(seconds=28.5))
    [shown] = sent(fake_platforms)
    assert shown.endswith("(The answer was cut off: it took too long.)")
    assert 0 < shown.count("word") < 40
    assert (question.status, question.done_reason) == ("answered", "timeout")


def test_no_retry_is_scheduled_past_the_budget(ask, fake_ollama, fake_platforms, settings):
    settings.IM_ANSWER_BUDGET_SECONDS, settings.OLLAMA_RETRY_BACKOFF = 30, 60
    fake_ollama.fail_status = 503
    question = ask()
    assert len(fake_ollama.requests) == 1  # the first backoff (30–60 s) would end past it
    assert question.status == "failed"


def test_a_long_answer_on_a_platform_without_live_messages_gets_one_sign_of_life(
    ask, fake_ollama, fake_platforms, settings
):
    settings.IM_SIGN_OF_LIFE_SECONDS = 0.3
    fake_ollama.reply, fake_ollama.chunk_delay = " ".join(["word"] * 12), 0.06
    ask()
    assert sent(fake_platforms) == ["Writing the answer, one moment…", fake_ollama.reply]


def test_an_answer_ending_while_its_sign_of_life_is_on_its_way_goes_after_it(
    ask, fake_ollama, fake_platforms, settings
):
    settings.IM_SIGN_OF_LIFE_SECONDS = 0.2
    fake_ollama.reply, fake_ollama.chunk_delay = "word word word", 0.1  # done at about 0.3 s
    fake_platforms.slow_paths["/cgi-bin/message/send"] = 0.5  # the notice: 0.2 s to 0.7 s
    ask()
    notice, answer = (r for r in fake_platforms.requests if r.path == "/cgi-bin/message/send")
    assert sent(fake_platforms) == ["Writing the answer, one moment…", "word word word"]
    assert answer.received_at >= notice.received_at + 0.5


def test_a_quick_answer_comes_without_a_sign_of_life(ask, fake_ollama, fake_platforms, settings):
    settings.IM_SIGN_OF_LIFE_SECONDS = 2
    ask()
    assert sent(fake_platforms) == [fake_ollama.reply]


def test_wecom_app_answers_are_markdown_unless_the_bot_says_text(
    ask, wecom_bot, fake_ollama, fake_platforms
):
    fake_ollama.reply = "**Restart** the client."
    ask()
    wecom_bot.credentials = {**wecom_bot.credentials, "message_format": "text"}
    wecom_bot.save()
    ask("again?")
    assert [m["msgtype"] for m in fake_platforms.messages("wecom")] == ["markdown", "text"]
    assert sent(fake_platforms) == ["**Restart** the client."] * 2
