"""Sending messages through the API and reading their answers (spec/api.md)."""

import json
import time

import pytest

from conversations.models import Message
from tests.api.conftest import read_stream
from tests.callbacks import as_json
from tests.factories import BotFactory

pytestmark = pytest.mark.django_db

MESSAGES = "/api/v1/messages/"


@pytest.fixture
def send(api, eager_celery, django_capture_on_commit_callbacks):
    """POST a message and run what it enqueues to the end, as a worker would."""

    def post(**body):
        with django_capture_on_commit_callbacks(execute=True):
            return api.post(MESSAGES, {"user": "crm:10042", "text": "你好", **body}, format="json")

    return post


def test_a_message_travels_the_chat_path_and_its_answer_is_read_back(api, send, fake_ollama):
    fake_ollama.reply = "报销流程在 OA 系统里。"
    sent = send(text="我们的报销流程是什么？", conversation="ticket-77")
    assert sent.status_code == 202  # `wait` 0: not answered yet when it returned
    message = api.get(f"{MESSAGES}{sent.json()['id']}/").json()
    assert message["status"] == "answered" and message["platform"] == "api"
    assert message["answer"]["text"] == "报销流程在 OA 系统里。"
    assert message["user"] == "crm:10042" and message["text"] == "我们的报销流程是什么？"
    row = Message.objects.get(role="user")
    assert row.bot.platform == "api" and row.conversation.chat_id == "ticket-77"


def test_an_idempotency_key_returns_the_same_message_without_a_second_model_call(
    api, send, fake_ollama
):
    first = send(idempotency_key="c0b8-1")
    again = send(idempotency_key="c0b8-1")
    header = api.post(
        MESSAGES, {"user": "u", "text": "hi"}, format="json", HTTP_IDEMPOTENCY_KEY="c0b8-1"
    )
    assert first.json()["id"] == again.json()["id"] == header.json()["id"]
    assert len(fake_ollama.requests) == 1


def test_commands_work_as_in_chat(api, send):
    sent = send(text="/help")
    message = api.get(f"{MESSAGES}{sent.json()['id']}/").json()
    assert message["status"] == "ignored" and "/reset" in message["answer"]["text"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": "u"}, "text"),
        ({"text": "hi"}, "user"),
        ({"text": "", "user": "u"}, "text"),
        ({"text": " \n ", "user": "u"}, "text"),
        ({"text": "x" * 20_001, "user": "u"}, "text"),
        ({"text": "hi", "user": "u", "wait": 61}, "wait"),
        ({"text": "hi", "user": "u" * 201}, "user"),
        ({"text": "hi", "user": "a\x00b"}, "user"),
        ({"text": "hi", "user": "u", "conversation": "c\ud800"}, "conversation"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, body, field):
    raw = as_json(body).encode()  # a lone surrogate as the JSON escape a client may send
    response = api.generic("POST", MESSAGES, raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and field in response.json()["errors"]
    assert not Message.objects.exists()


def test_a_malformed_body_is_a_400(api):
    response = api.generic("POST", MESSAGES, b"{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


def test_the_answer_streams_as_server_sent_events(api, send):
    sent = send()
    response = api.get(f"{MESSAGES}{sent.json()['id']}/stream/")
    assert response["Content-Type"] == "text/event-stream"
    body = read_stream(response)
    events = [block.split("\n") for block in body.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    data = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert names == ["delta", "done"]
    assert data[0]["text"] == data[1]["answer"]["text"]


def test_a_failed_answer_streams_an_error_event(api, send, fake_ollama, settings):
    settings.OLLAMA_MAX_RETRIES = 0
    fake_ollama.fail_status = 404
    sent = send()
    body = read_stream(api.get(f"{MESSAGES}{sent.json()['id']}/stream/"))
    assert body.startswith("event: error")


def test_an_event_source_asking_for_an_event_stream_gets_one(api, send):
    sent = send()
    response = api.get(f"{MESSAGES}{sent.json()['id']}/stream/", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"


def test_a_reasoning_models_stream_carries_only_the_answer(api, send, fake_ollama):
    fake_ollama.thinking, fake_ollama.reply = "Let me think about expenses.", "Use the OA system."
    sent = send()
    body = read_stream(api.get(f"{MESSAGES}{sent.json()['id']}/stream/"))
    deltas = [
        json.loads(block.split("\n")[1].removeprefix("data: "))["text"]
        for block in body.strip().split("\n\n")
        if block.startswith("event: delta")
    ]
    assert "".join(deltas) == "Use the OA system."


def test_a_wait_that_runs_out_returns_the_unanswered_message_to_be_polled(api):
    started = time.monotonic()
    response = api.post(MESSAGES, {"user": "u", "text": "hi", "wait": 1}, format="json")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert 1 <= time.monotonic() - started < 5


def test_a_bot_already_named_like_the_api_bot_does_not_stop_the_api(api, tenant_a, send):
    BotFactory(tenant=tenant_a, name="REST API", platform="wecom")
    sent = send()
    assert sent.status_code == 202
    assert Message.objects.get(pk=sent.json()["id"]).bot.name == "REST API 2"
