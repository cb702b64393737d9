"""What the model sees: system prompt, the session's last whole rounds, the new question."""

import pytest

from conversations.context import (
    TEMPLATE_TOKENS_PER_MESSAGE,
    QuestionTooLong,
    build_messages,
    estimate_tokens,
)
from conversations.models import Message
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

ANSWERED, FAILED = Message.Status.ANSWERED, Message.Status.FAILED


@pytest.fixture
def conversation(wecom_bot):
    return ConversationFactory(bot=wecom_bot)


def ask(conversation, text, answer=None, status=ANSWERED):
    """A question of the session, with its assistant row when `answer` is given."""
    question = MessageFactory(conversation=conversation, content=text, status=status)
    if answer is not None:
        MessageFactory(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            reply_to=question,
            content=answer,
            external_id=None,
        )
    return question


def contents(messages):
    return [m["content"] for m in messages]


def test_token_estimate_is_high_two_per_cjk_character_one_per_three_others():
    # Real tokenizers: 1.5–1.95 tokens per Chinese character, 3.6 characters per token.
    assert estimate_tokens("你好世界") == 8 + TEMPLATE_TOKENS_PER_MESSAGE
    assert estimate_tokens("abcdefghi") == 3 + TEMPLATE_TOKENS_PER_MESSAGE
    assert estimate_tokens("abcde") == 2 + TEMPLATE_TOKENS_PER_MESSAGE  # rounded up


def test_a_question_that_cannot_fit_on_its_own_is_refused_before_any_call(conversation, settings):
    settings.OLLAMA_NUM_PREDICT = 1024
    conversation.tenant.num_ctx = 4096
    question = MessageFactory(conversation=conversation, content="报" * 6300)  # a pasted document
    with pytest.raises(QuestionTooLong) as refused:
        build_messages(question)
    assert refused.value.permanent and refused.value.room == 4096 - 1024


def test_it_leaves_out_failed_questions_their_apologies_and_commands(conversation):
    ask(conversation, "q1", "a1")
    ask(conversation, "q2", "Sorry, the model is unavailable.", status=FAILED)
    ask(conversation, "/help", "I can answer…", status=Message.Status.IGNORED)
    ask(conversation, "too fast", status=Message.Status.RATE_LIMITED)
    question = ask(conversation, "q3", status=Message.Status.ANSWERING)
    assert contents(build_messages(question))[1:] == ["q1", "a1", "q3"]


def test_it_trims_whole_rounds_oldest_first_to_the_context_budget(conversation, settings):
    tenant = conversation.tenant
    tenant.system_prompt = ""
    settings.OLLAMA_NUM_PREDICT = 0
    round_cost = 2 * estimate_tokens("x" * 40)
    question_cost = estimate_tokens("now?")
    tenant.num_ctx = question_cost + 2 * round_cost + round_cost // 2  # room for two and a half
    tenant.save()
    for n in range(4):
        ask(conversation, f"q{n}".ljust(40, "x"), f"a{n}".ljust(40, "x"))
    question = ask(conversation, "now?", status=Message.Status.ANSWERING)
    messages = build_messages(question)
    assert [c[:2] for c in contents(messages)] == ["q2", "a2", "q3", "a3", "no"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]


def test_a_question_closed_without_an_answer_is_no_round(conversation):
    """Taken back while queued, or stopped before a word: answered, with no answer row."""
    ask(conversation, "q1", "a1")
    ask(conversation, "recalled")
    question = ask(conversation, "q3", status=Message.Status.ANSWERING)
    assert contents(build_messages(question))[1:] == ["q1", "a1", "q3"]


def test_the_bot_system_prompt_overrides_the_tenant_one(conversation):
    conversation.tenant.system_prompt = "Tenant prompt."
    conversation.bot.system_prompt = "Bot prompt."
    question = ask(conversation, "hi", status=Message.Status.ANSWERING)
    question.bot, question.tenant = conversation.bot, conversation.tenant
    assert build_messages(question)[0] == {"role": "system", "content": "Bot prompt."}


def test_no_rounds_are_read_when_the_tenant_keeps_no_context(
    conversation, django_assert_num_queries
):
    conversation.tenant.context_max_rounds = 0
    ask(conversation, "q1", "a1")
    question = ask(conversation, "q2", status=Message.Status.ANSWERING)
    question.bot, question.tenant = conversation.bot, conversation.tenant
    with django_assert_num_queries(0):
        assert contents(build_messages(question))[-1] == "q2"
