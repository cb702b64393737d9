"""The web process as production starts it (gunicorn with gunicorn.conf.py) keeps answering
while clients hold connections open sending their requests a byte at a time."""

import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.logs import assert_one_format

SLOW_CLIENTS = 40  # more than a threaded worker's 2 processes x 8 threads would survive
GENUINE = 20


@pytest.fixture
def web(spawn_web):
    return spawn_web(WEB_HEADER_TIMEOUT="3", WEB_BODY_TIMEOUT="3")


def _trickle(port: int, request: bytes, stop: threading.Event) -> bool:
    """Send `request` a byte every half second until stopped; whether the server hung up."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for byte in request:
            if stop.wait(0.5):
                return False
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return True
        return False


def test_slow_clients_do_not_hold_up_genuine_requests(web):
    url, port, log = web
    slow_head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"x" * 200
    slow_body = b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n\r\n"
    stop = threading.Event()
    with ThreadPoolExecutor(SLOW_CLIENTS) as pool:
        for n in range(SLOW_CLIENTS):
            # A slow body: its head arrives at once, then one byte at a time.
            request = slow_head if n % 2 else slow_body + b"a" * 500
            pool.submit(_trickle, port, request, stop)
        time.sleep(2)  # every slow client connected and sending

        took = []
        try:
            for _ in range(GENUINE):
                started = time.monotonic()
                assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
                took.append(time.monotonic() - started)
        finally:
            stop.set()

    assert max(took) < 1.0, took
    assert_one_format(log.read_text())


def test_a_client_that_does_not_finish_its_head_in_time_is_disconnected(web):
    url, port, log = web
    started = time.monotonic()
    request = b"GET /healthz HTTP/1.1\r\nX-Padding: " + b"x" * 20  # 10 s at this pace
    hung_up = _trickle(port, request, threading.Event())
    assert hung_up and 2.5 < time.monotonic() - started < 6  # WEB_HEADER_TIMEOUT=3


def test_a_client_that_does_not_finish_its_body_in_time_is_disconnected(web):
    url, port, log = web
    started = time.monotonic()
    request = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n" + b"a" * 20
    hung_up = _trickle(port, request, threading.Event())  # the body alone takes 10 s
    assert hung_up and time.monotonic() - started < 3 + 6  # the head's 3 s, then WEB_BODY_TIMEOUT


def test_a_head_larger_than_any_client_of_ours_sends_is_refused(web):
    url, port, log = web
    with socket.create_connection(("127.0.0.1", port)) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for _ in range(100):  # 100 KiB of headers, past MAX_HEAD_BYTES
                sock.sendall(b"X-Padding: " + b"x" * 1024 + b"\r\n")
            sock.sendall(b"\r\n")
            answer = sock.recv(1024)
        except ConnectionError:
            answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer  # never served


def test_a_request_sent_in_one_write_past_64_kib_is_served(web):
    url, port, log = web
    body = b"x" * 70_000  # head and body in one segment: only the head counts as head
    head = f"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode() + body)
        assert sock.recv(1024).startswith(b"HTTP/1.1 "), "no answer"


def test_a_body_over_the_limit_is_refused_before_it_is_read(web):
    url, port, log = web
    response = requests.post(f"{url}/callbacks/wecom/x/", data=b"x" * (256 * 1024 + 1), timeout=5)
    assert response.status_code == 413
    chunked = requests.post(
        f"{url}/api/v1/messages/", data=iter([b"x" * 200_000, b"y" * 200_000]), timeout=5
    )
    assert chunked.status_code == 413


def _response(sock: socket.socket) -> bytes:
    """The head of one response read off `sock`, its body read past (Content-Length);
    b"" if the server closed the connection instead."""
    data = b""
    while b"\r\n\r\n" not in data:
        if not (chunk := sock.recv(65536)):
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        if not (chunk := sock.recv(65536)):
            return b""  # closed mid-body
        body += chunk
    return head


def test_a_kept_alive_connection_idle_for_seconds_still_carries_the_next_request(web):
    url, port, log = web
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        assert _response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(3)  # gunicorn's default keep-alive (2 s) closed it meanwhile
        sock.sendall(request)
        assert _response(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    ("raw", "problem"), [("abc", "a number"), ("0", "between"), ("-1", "between")]
)
def test_a_timeout_out_of_range_stops_the_start_naming_it(monkeypatch, raw, problem):
    from common.webserver import seconds

    monkeypatch.setenv("WEB_HEADER_TIMEOUT", raw)
    with pytest.raises(ValueError, match=f"WEB_HEADER_TIMEOUT must .*{problem}"):
        seconds("WEB_HEADER_TIMEOUT", 10, 0.5, 300)
