"""What real models do to an answer: reasoning, silence that is not silence, deadlines.

conversations.llm and conversations.streams against the fake Ollama over real HTTP.
"""

import time

import pytest

from conversations import llm
from conversations.llm import ModelUnavailable, ThoughtTooLong, chat
from conversations.streams import AnswerStream
from tests.fakes.ollama import FakeOllama

MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]
THOUGHTS = "The user asks about Rayleigh scattering. I should be brief."
ANSWER = "Air scatters blue light more than red."


@pytest.fixture
def fake(fake_ollama: FakeOllama) -> FakeOllama:
    """The fake Ollama as a thinking model; nothing remembered of earlier models."""
    fake_ollama.reply, fake_ollama.thinking = ANSWER, THOUGHTS
    llm._NO_THINK.clear()
    return fake_ollama


@pytest.fixture(params=["native", "openai"])
def endpoint(request: pytest.FixtureRequest, fake: FakeOllama) -> str:
    return fake.url if request.param == "native" else f"{fake.url}/v1"


def test_people_see_only_the_answer_of_a_thinking_model(endpoint, fake):
    shown: list[str] = []
    thinking: list[bool] = []
    completion = chat(
        endpoint,
        "qwen3:0.6b",
        MESSAGES,
        on_delta=shown.append,
        on_thinking=lambda: thinking.append(True),
    )
    assert completion.content == ANSWER
    assert "".join(shown) == ANSWER  # the reasoning never flashes on screen
    assert (completion.thought, thinking) == (True, [True])


def test_ollamas_own_think_field_is_used_where_the_model_supports_it(fake):
    chat(fake.url, "qwen3:0.6b", MESSAGES)
    assert fake.requests[-1]["think"] is True


def test_a_model_that_cannot_think_is_asked_again_without_and_remembered(fake):
    fake.can_think, fake.thinking = False, None
    assert chat(fake.url, "gemma:2b", MESSAGES).content == ANSWER
    assert chat(fake.url, "gemma:2b", MESSAGES).content == ANSWER
    assert [r.get("think") for r in fake.requests] == [True, None, None]


def test_a_model_that_spends_its_whole_budget_thinking_fails_for_good(endpoint, fake):
    with pytest.raises(ThoughtTooLong) as failed:
        chat(endpoint, "qwen3:0.6b", MESSAGES, options={"num_predict": 5})
    assert failed.value.permanent and failed.value.notice == "thought_too_long"
    assert len(fake.requests) == 1


def test_keep_alive_comments_are_not_tokens(fake, settings):
    settings.OLLAMA_TIMEOUT = 0.5
    fake.thinking, fake.pings_after = None, 2
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="no tokens for"):
        chat(f"{fake.url}/v1", "qwen2:1.5b", MESSAGES)
    assert time.monotonic() - started < 3


def test_the_deadline_ends_a_generation_that_is_still_going_keeping_what_it_wrote(endpoint, fake):
    fake.thinking, fake.reply, fake.chunk_delay = None, " ".join(["word"] * 50), 0.1
    completion = chat(endpoint, "qwen2:1.5b", MESSAGES, deadline=time.monotonic() + 1.5)
    assert completion.done_reason == "timeout"
    assert 0 < len(completion.content.split()) < 50


@pytest.mark.parametrize(
    ("pieces", "shown"),
    [
        (["<thi", "nk>", "hm", "m</th", "ink>", "\n\n", "Hi", "!"], "Hi!"),
        (["  <think>x</think>Hi"], "Hi"),
        (["<b>bold</b>"], "<b>bold</b>"),
        (["<", "3 you"], "<3 you"),
        (["<th"], "<th"),
        (["Hi <think>not a block</think>"], "Hi <think>not a block</think>"),
    ],
)
def test_an_inline_think_block_is_removed_only_at_the_start_whatever_the_chunks(pieces, shown):
    seen: list[str] = []
    stream = AnswerStream("m", on_delta=seen.append)
    for piece in pieces:
        stream.add(piece)
    assert stream.finish(None, None, None, None).content == "".join(seen) == shown


def test_the_deadline_holds_while_the_model_sends_nothing(fake):
    fake.thinking, fake.first_token_delay = None, 5  # a model still loading
    started = time.monotonic()
    with pytest.raises(ModelUnavailable):
        chat(fake.url, "qwen2:1.5b", MESSAGES, deadline=time.monotonic() + 0.5)
    assert time.monotonic() - started < 2


def test_a_deadline_that_falls_while_the_model_thinks_is_not_a_thinking_budget(fake):
    fake.chunk_delay = 0.05
    fake.thinking = " ".join(["hmm"] * 100)
    with pytest.raises(ModelUnavailable) as failed:
        chat(f"{fake.url}/v1", "qwen3:0.6b", MESSAGES, deadline=time.monotonic() + 1.0)
    assert not failed.value.permanent and "time budget" in str(failed.value)
