"""common.hangup: a request closed from another thread, against a real HTTP server."""

import threading
import time
from collections.abc import Iterator

import pytest
import requests

from common import http
from common.hangup import Hangup
from tests.fakes.ollama import FakeOllama

BODY = {"model": "gemma:2b", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOllama) -> FakeOllama:
    server.reset()
    return server


def post(fake: FakeOllama, hangup: Hangup) -> requests.Response:
    with hangup.armed():
        response = http.session().post(f"{fake.url}/api/chat", json=BODY, stream=True, timeout=60)
        with response:
            return response


def test_it_closes_a_request_still_waiting_for_its_first_byte(fake: FakeOllama) -> None:
    fake.first_token_delay = 30
    hangup = Hangup()
    threading.Timer(0.3, hangup).start()
    started = time.monotonic()

    with pytest.raises(requests.ConnectionError):
        post(fake, hangup)

    assert time.monotonic() - started < 1.5
    assert fake.wait_for_disconnect(1).at - started < 1.5


def test_a_hangup_before_the_request_closes_it_as_it_goes_out(fake: FakeOllama) -> None:
    fake.first_token_delay = 30
    hangup = Hangup()
    hangup()

    with pytest.raises(requests.ConnectionError):
        post(fake, hangup)

    assert fake.wait_for_disconnect(1)


def test_a_hangup_after_the_request_leaves_its_connection_to_others(fake: FakeOllama) -> None:
    hangup = Hangup()
    with hangup.armed():
        first = http.session().post(f"{fake.url}/api/chat", json=BODY, timeout=10)
    hangup()  # the connection went back to the pool: the next request may reuse it

    second = http.session().post(f"{fake.url}/api/chat", json=BODY, timeout=10)

    assert first.ok and second.ok and hangup.requested
    assert fake.disconnects == []


def test_only_the_armed_request_is_closed(fake: FakeOllama) -> None:
    """A call the same thread makes while reading the answer (a live update) is not the
    one to close."""
    fake.chunk_delay = 0.2
    hangup = Hangup()
    with hangup.armed():
        response = http.session().post(f"{fake.url}/api/chat", json=BODY, stream=True, timeout=10)
        lines = response.iter_lines()
        next(lines)
        other = http.session().get(f"{fake.url}/api/version", timeout=10)
        hangup()
        with pytest.raises(requests.RequestException):
            list(lines)

    assert other.ok
    assert fake.wait_for_disconnect(1) and len(fake.disconnects) == 1
