"""conversations.llm against a fake Ollama that speaks real HTTP (no database needed)."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from common.hangup import Hangup
from conversations.llm import (
    STOPPED,
    Completion,
    LLMError,
    ModelRejected,
    ModelUnavailable,
    chat,
)
from tests.fakes.ollama import DEFAULT_REPLY, FAILURE_TEXTS, MIDSTREAM_ERROR, FakeOllama

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello"},
]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOllama) -> FakeOllama:
    server.reset()
    return server


@pytest.fixture(params=["native", "openai"])
def endpoint(request: pytest.FixtureRequest, fake: FakeOllama) -> str:
    """The fake's base URL as a tenant would configure it, for each protocol."""
    return fake.url if request.param == "native" else f"{fake.url}/v1"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_it_streams_the_reply_and_calls_on_delta_in_order(endpoint: str) -> None:
    deltas: list[str] = []

    completion = chat(endpoint, "gemma:2b", MESSAGES, on_delta=deltas.append)

    assert completion.content == DEFAULT_REPLY
    assert deltas == ["Hello", " from", " the", " fake", " model"]


def test_answers_one_after_another_share_one_connection(endpoint: str, fake: FakeOllama) -> None:
    """Each body is read to its end, so its connection goes back to the pool: no new
    TCP (or TLS) connection for every question."""
    chat(endpoint, "gemma:2b", MESSAGES)  # the connection, if the pool has none yet
    before = fake.connections

    for _ in range(3):
        assert chat(endpoint, "gemma:2b", MESSAGES).content == DEFAULT_REPLY

    assert fake.connections == before


def test_a_server_slow_to_end_the_body_holds_up_no_answer(endpoint: str, fake: FakeOllama) -> None:
    fake.linger = 5.0
    started = time.monotonic()

    assert chat(endpoint, "gemma:2b", MESSAGES).content == DEFAULT_REPLY

    assert time.monotonic() - started < 2
    fake.linger = 0.0
    assert chat(endpoint, "gemma:2b", MESSAGES).content == DEFAULT_REPLY  # a new connection


def test_it_returns_the_model_token_counts_and_timings(endpoint: str, fake: FakeOllama) -> None:
    fake.first_token_delay = 0.2

    completion = chat(endpoint, "qwen2:1.5b", MESSAGES)

    assert isinstance(completion, Completion)
    assert completion.model == "qwen2:1.5b"
    assert completion.done_reason == "stop"
    assert completion.prompt_tokens == 5  # words in MESSAGES, the fake's token count
    assert completion.completion_tokens == 5
    assert completion.first_token_ms is not None and completion.first_token_ms >= 200
    assert completion.total_ms >= completion.first_token_ms


def test_it_sends_messages_options_and_keep_alive(fake: FakeOllama) -> None:
    chat(
        fake.url,
        "gemma:2b",
        MESSAGES,
        options={"temperature": 0.2, "num_ctx": 4096},
        keep_alive="10m",
    )

    [body] = fake.requests
    assert body["model"] == "gemma:2b"
    assert body["messages"] == MESSAGES
    assert body["stream"] is True
    assert body["keep_alive"] == "10m"
    assert body["options"] == {"num_predict": 1024, "temperature": 0.2, "num_ctx": 4096}


def test_it_defaults_num_predict_from_settings(fake: FakeOllama, settings) -> None:
    settings.OLLAMA_NUM_PREDICT = 77

    chat(fake.url, "gemma:2b", MESSAGES)

    assert fake.requests[0]["options"] == {"num_predict": 77}
    assert "keep_alive" not in fake.requests[0]


def test_it_keeps_the_callers_num_predict_and_reports_length(endpoint: str) -> None:
    completion = chat(endpoint, "gemma:2b", MESSAGES, options={"num_predict": 2})

    assert completion.content == "Hello from"
    assert completion.done_reason == "length"


def test_it_maps_options_to_openai_fields(fake: FakeOllama) -> None:
    chat(f"{fake.url}/v1/", "gemma:2b", MESSAGES, options={"temperature": 0.3}, keep_alive=-1)

    [body] = fake.requests
    assert body == {
        "model": "gemma:2b",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 1024,
        "temperature": 0.3,
    }


def test_it_rejects_an_unknown_model_permanently(endpoint: str, fake: FakeOllama) -> None:
    fake.known_models = {"gemma:2b"}

    with pytest.raises(ModelRejected) as caught:
        chat(endpoint, "gemma:7b", MESSAGES)

    assert caught.value.permanent is True
    assert caught.value.status == 404
    assert str(caught.value) == 'HTTP 404: model "gemma:7b" not found, try pulling it first'


def test_it_rejects_a_bad_request_without_echoing_the_request(
    endpoint: str, fake: FakeOllama
) -> None:
    fake.fail_status = 400
    secret = [{"role": "user", "content": "the merger closes on Friday"}]

    with pytest.raises(ModelRejected) as caught:
        chat(endpoint, "gemma:2b", secret)

    assert caught.value.status == 400
    assert "does not support tools" in str(caught.value)
    assert "merger" not in str(caught.value)


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_it_treats_server_errors_and_busy_as_unavailable(
    endpoint: str, fake: FakeOllama, status: int
) -> None:
    fake.fail_status = status

    with pytest.raises(ModelUnavailable) as caught:
        chat(endpoint, "gemma:2b", MESSAGES)

    assert caught.value.permanent is False
    assert caught.value.status == status
    assert str(caught.value).startswith(f"HTTP {status}: ")


def test_it_keeps_ollamas_busy_text_verbatim(fake: FakeOllama) -> None:
    fake.fail_status = 503

    with pytest.raises(ModelUnavailable) as caught:
        chat(fake.url, "gemma:2b", MESSAGES)

    assert str(caught.value) == f"HTTP 503: {FAILURE_TEXTS[503]}"


def test_it_truncates_long_error_texts(fake: FakeOllama) -> None:
    fake.known_models = set()

    with pytest.raises(ModelRejected) as caught:
        chat(fake.url, "x" * 2000, MESSAGES)

    assert len(str(caught.value)) < 320


def test_it_succeeds_once_the_failures_stop(fake: FakeOllama) -> None:
    fake.fail_status, fake.fail_times = 503, 1

    with pytest.raises(ModelUnavailable):
        chat(fake.url, "gemma:2b", MESSAGES)
    assert chat(fake.url, "gemma:2b", MESSAGES).content == DEFAULT_REPLY


def test_it_treats_connection_refused_as_unavailable() -> None:
    with pytest.raises(ModelUnavailable) as caught:
        chat(closed_port_url(), "gemma:2b", MESSAGES)

    assert caught.value.status is None


def test_it_rejects_an_endpoint_that_is_not_a_url() -> None:
    with pytest.raises(ModelRejected):
        chat("localhost:11434", "gemma:2b", MESSAGES)


def test_it_times_out_waiting_for_the_first_token(
    endpoint: str, fake: FakeOllama, settings
) -> None:
    settings.OLLAMA_TIMEOUT = 0.2
    fake.first_token_delay = 1.0

    with pytest.raises(ModelUnavailable):
        chat(endpoint, "gemma:2b", MESSAGES)


def test_it_times_out_when_the_stream_stalls(endpoint: str, fake: FakeOllama, settings) -> None:
    # Slack for a busy CI machine: the first word must arrive within the timeout.
    settings.OLLAMA_TIMEOUT = 1.0
    fake.chunk_delay = 3.0
    deltas: list[str] = []

    with pytest.raises(ModelUnavailable):
        chat(endpoint, "gemma:2b", MESSAGES, on_delta=deltas.append)

    assert deltas == ["Hello"]


def test_it_treats_a_midstream_error_line_as_unavailable(fake: FakeOllama) -> None:
    fake.midstream_error = MIDSTREAM_ERROR
    deltas: list[str] = []

    with pytest.raises(ModelUnavailable) as caught:
        chat(fake.url, "gemma:2b", MESSAGES, on_delta=deltas.append)

    assert str(caught.value) == f"model failed mid-stream: {MIDSTREAM_ERROR}"
    assert caught.value.status is None
    assert deltas == ["Hello", " from"]


def test_it_treats_an_openai_stream_without_done_as_unavailable(fake: FakeOllama) -> None:
    fake.midstream_error = MIDSTREAM_ERROR

    with pytest.raises(ModelUnavailable, match=r"without \[DONE\]"):
        chat(f"{fake.url}/v1", "gemma:2b", MESSAGES)


def test_it_treats_a_native_stream_without_done_as_unavailable(fake: FakeOllama) -> None:
    fake.raw_stream = [json.dumps({"message": {"content": "Hel"}, "done": False}) + "\n"]

    with pytest.raises(ModelUnavailable, match="without a done line"):
        chat(fake.url, "gemma:2b", MESSAGES)


@pytest.mark.parametrize("line", ["not json\n", "[1, 2]\n"])
def test_it_treats_a_garbled_line_as_unavailable(
    endpoint: str, fake: FakeOllama, line: str
) -> None:
    fake.raw_stream = [line if endpoint == fake.url else f"data: {line}\n"]

    with pytest.raises(ModelUnavailable, match="model stream"):
        chat(endpoint, "gemma:2b", MESSAGES)


def test_it_reads_the_newer_openai_framing(fake: FakeOllama) -> None:
    """Ollama v0.18+ sends `role` only first and finishes with an empty delta of its own."""
    chunks = [
        {"model": "m", "choices": [{"delta": {"role": "assistant", "content": "Hi"}}]},
        {"model": "m", "choices": [{"delta": {"content": " there"}}]},
        {"model": "m", "choices": [{"delta": {}, "finish_reason": "length"}]},
        {"model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    ]
    fake.raw_stream = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]

    completion = chat(f"{fake.url}/v1", "m", MESSAGES)

    assert (completion.content, completion.done_reason) == ("Hi there", "length")
    assert (completion.prompt_tokens, completion.completion_tokens) == (3, 2)


def test_the_fake_refuses_a_keep_alive_string_without_a_unit_as_ollama_does(
    fake: FakeOllama,
) -> None:
    with pytest.raises(ModelRejected) as caught:
        chat(fake.url, "gemma:2b", MESSAGES, keep_alive="-1")

    assert str(caught.value) == 'HTTP 400: time: missing unit in duration "-1"'
    assert chat(fake.url, "gemma:2b", MESSAGES, keep_alive=-1).content == DEFAULT_REPLY


def test_the_fake_refuses_an_option_of_the_wrong_type_as_ollama_does(fake: FakeOllama) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        chat(fake.url, "gemma:2b", MESSAGES, options={"num_ctx": "4096"})

    assert str(caught.value) == 'HTTP 500: option "num_ctx" must be of type integer'


# A misdirected endpoint: what it answers never reaches an error beyond Ollama's own `error`

LEAK = "db_password=hunter2"


@pytest.mark.parametrize("status", [400, 404, 500, 502])
def test_it_never_quotes_a_body_that_is_not_ollamas_error(fake: FakeOllama, status: int) -> None:
    fake.raw_error = (status, f"<html>{LEAK}</html>".encode())

    with pytest.raises(LLMError) as caught:
        chat(fake.url, "gemma:2b", MESSAGES)

    assert str(caught.value) == f"HTTP {status}"


def test_it_keeps_ollamas_error_field_as_one_clipped_printable_line(fake: FakeOllama) -> None:
    error = "model\nnot\x1b[31m found\u202e" + "x" * 1000
    fake.raw_error = (404, json.dumps({"error": error, "detail": LEAK}).encode())

    with pytest.raises(ModelRejected) as caught:
        chat(fake.url, "gemma:2b", MESSAGES)

    text = str(caught.value)
    assert text.startswith("HTTP 404: model not [31m found xxx")
    assert text.isprintable() and len(text) <= len("HTTP 404: ") + 201
    assert LEAK not in text


@pytest.mark.parametrize("line", [f"{LEAK}\n", f'["{LEAK}"]\n'])
def test_it_never_quotes_a_stream_line_that_is_not_a_chunk(fake: FakeOllama, line: str) -> None:
    fake.raw_stream = [line]

    with pytest.raises(ModelUnavailable, match="model stream") as caught:
        chat(fake.url, "gemma:2b", MESSAGES)

    assert LEAK not in str(caught.value)


@contextmanager
def not_http(reply: bytes) -> Iterator[str]:
    """A TCP server that answers anything with `reply` (a Redis, say): its URL."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed
            with conn:
                conn.recv(65536)
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_it_never_quotes_what_a_server_that_is_not_http_answers() -> None:
    with not_http(f"-ERR {LEAK}\r\n".encode()) as url, pytest.raises(ModelUnavailable) as caught:
        chat(url, "gemma:2b", MESSAGES)

    assert str(caught.value).startswith("model endpoint unreachable: ConnectionError (")
    assert LEAK not in str(caught.value)


def test_it_keeps_the_systems_words_for_a_refused_connection() -> None:
    with pytest.raises(ModelUnavailable) as caught:
        chat(closed_port_url(), "gemma:2b", MESSAGES)

    assert str(caught.value) == "model endpoint unreachable: ConnectionError (Connection refused)"


def stop_after(seconds: float) -> Hangup:
    hangup = Hangup()
    threading.Timer(seconds, hangup).start()
    return hangup


def test_a_stop_during_the_first_token_wait_closes_the_request_at_once(
    endpoint: str, fake: FakeOllama
) -> None:
    fake.first_token_delay = 30
    started = time.monotonic()

    completion = chat(endpoint, "gemma:2b", MESSAGES, hangup=stop_after(0.3))

    assert (completion.content, completion.done_reason) == ("", STOPPED)
    assert time.monotonic() - started < 1.3
    assert fake.wait_for_disconnect(1).at - started < 1.3  # Ollama stops generating


def test_a_stop_mid_stream_returns_the_text_so_far(endpoint: str, fake: FakeOllama) -> None:
    fake.reply, fake.chunk_delay = " ".join(f"w{n}" for n in range(50)), 0.1
    deltas: list[str] = []

    completion = chat(
        endpoint, "gemma:2b", MESSAGES, on_delta=deltas.append, hangup=stop_after(0.5)
    )

    assert completion.done_reason == STOPPED
    assert completion.content == "".join(deltas) and 0 < len(deltas) < 50
    assert (completion.prompt_tokens, completion.completion_tokens) == (None, None)
    assert fake.wait_for_disconnect(1)


def test_a_stop_before_the_call_asks_the_model_nothing(fake: FakeOllama) -> None:
    hangup = Hangup()
    hangup()

    completion = chat(fake.url, "gemma:2b", MESSAGES, hangup=hangup)

    assert (completion.content, completion.done_reason) == ("", STOPPED)
    assert (completion.prompt_tokens, completion.completion_tokens) == (0, 0)
    assert fake.requests == []


def test_a_stopped_thinking_model_is_not_a_failure(fake: FakeOllama) -> None:
    fake.thinking, fake.chunk_delay = " ".join(["hmm"] * 40), 0.1
    fake.reply = "answer"

    completion = chat(f"{fake.url}/v1", "qwen3", MESSAGES, hangup=stop_after(0.5))

    assert (completion.content, completion.done_reason, completion.thought) == ("", STOPPED, True)
