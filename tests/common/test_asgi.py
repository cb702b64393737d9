"""The WSGI application served from the event loop by a pool of threads: what the
application sees, and what the client gets."""

import asyncio
import threading

from common.asgi import BodyLimit, Slots, WsgiInThreads, slot_released


def serve(app, scope: dict, body_parts: list[bytes], *, disconnect: bool = False) -> list[dict]:
    """Run one request through WsgiInThreads; the ASGI messages it sent."""
    incoming = [
        {"type": "http.request", "body": part, "more_body": i < len(body_parts) - 1}
        for i, part in enumerate(body_parts)
    ]
    if disconnect:
        incoming[-1:] = [{"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        if not incoming:
            await asyncio.sleep(3600)  # connected to the end
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    base = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}
    asyncio.run(WsgiInThreads(app, threads=2)({**base, **scope}, receive, send))
    return sent


def test_the_application_sees_the_request_as_wsgi_describes_it():
    seen = {}

    def app(environ, start_response):
        seen.update(environ, body=environ["wsgi.input"].read())
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Id", "7")])
        return [b"made"]

    sent = serve(
        app,
        {
            "method": "POST",
            "path": "/callbacks/wecom/知识库/",
            "query_string": b"msg_signature=abc&nonce=1",
            "headers": [
                (b"content-type", b"text/xml"),
                (b"x-forwarded-for", b"10.0.0.1"),
                (b"x-forwarded-for", b"10.0.0.2"),
            ],
            "client": ("192.0.2.7", 5000),
            "server": ("127.0.0.1", 8000),
        },
        [b"<xml>", b"</xml>"],
    )
    assert seen["REQUEST_METHOD"] == "POST" and seen["body"] == b"<xml></xml>"
    # PEP 3333: the path's UTF-8 bytes, as latin-1 characters.
    assert seen["PATH_INFO"].encode("latin-1").decode() == "/callbacks/wecom/知识库/"
    assert seen["QUERY_STRING"] == "msg_signature=abc&nonce=1"
    assert seen["CONTENT_TYPE"] == "text/xml" and seen["CONTENT_LENGTH"] == "11"
    assert seen["HTTP_X_FORWARDED_FOR"] == "10.0.0.1,10.0.0.2"
    assert seen["REMOTE_ADDR"] == "192.0.2.7" and seen["SERVER_PORT"] == "8000"
    assert sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"text/plain"), (b"x-id", b"7")],
        },
        {"type": "http.response.body", "body": b"made"},
    ]


class Streamed:
    """A streamed response as Django's is: iterable, `streaming`, closed when done."""

    streaming = True

    def __init__(self):
        self.threads = set()

    def __iter__(self):
        for chunk in (b"a" * 40_000, b"b" * 40_000, b"c" * 40_000):
            self.threads.add(threading.get_ident())
            yield chunk

    def close(self):
        self.threads.add(threading.get_ident())


def test_a_streamed_response_goes_out_piece_by_piece_from_one_thread():
    response = Streamed()

    def app(environ, start_response):
        start_response("200 OK", [])
        response.threads.add(threading.get_ident())
        return response

    sent = serve(app, {}, [b""])
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    # Pieces of at least 64 KiB: one handoff to the loop for each, not for each chunk.
    assert bodies == [b"a" * 40_000 + b"b" * 40_000, b"c" * 40_000, b""]
    assert [m.get("more_body", False) for m in sent[1:]] == [True, True, False]
    assert len(response.threads) == 1 and threading.get_ident() not in response.threads


def test_a_client_that_leaves_before_its_body_arrived_gets_nothing_run():
    ran = []

    def app(environ, start_response):
        ran.append(True)
        start_response("200 OK", [])
        return [b""]

    assert serve(app, {"method": "POST"}, [b"part", b"rest"], disconnect=True) == []
    assert not ran


def test_a_client_that_leaves_while_its_request_waits_for_a_thread_gets_nothing_run():
    busy, ran = threading.Event(), []

    def app(environ, start_response):
        ran.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/first":
            busy.wait(5)
        start_response("200 OK", [])
        return [b""]

    async def main() -> None:
        served = WsgiInThreads(app, threads=1)
        leave = asyncio.Event()

        def client(path: str) -> tuple:
            received = [{"type": "http.request", "body": b"", "more_body": False}]

            async def receive() -> dict:
                if received:
                    return received.pop(0)
                if path == "/second":
                    await leave.wait()
                    return {"type": "http.disconnect"}
                await asyncio.sleep(3600)
                return {}

            async def send(message: dict) -> None:
                pass

            scope = {"type": "http", "method": "POST", "path": path, "headers": []}
            return scope, receive, send

        first = asyncio.create_task(served(*client("/first")))
        await asyncio.sleep(0.1)  # the only thread is taken
        second = asyncio.create_task(served(*client("/second")))
        await asyncio.sleep(0.1)
        leave.set()  # the second client hangs up while waiting for the thread
        await asyncio.sleep(0.1)
        busy.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)

    asyncio.run(main())
    assert ran == ["/first"]


def test_a_client_that_leaves_mid_stream_lets_the_thread_go(monkeypatch):
    closed = threading.Event()

    class Endless:
        streaming = True

        def __iter__(self):
            while True:
                yield b"x" * 70_000  # a piece per chunk

        def close(self):
            closed.set()

    def app(environ, start_response):
        start_response("200 OK", [])
        return Endless()

    async def run() -> int:
        incoming: asyncio.Queue = asyncio.Queue()
        await incoming.put({"type": "http.request", "body": b"", "more_body": False})
        sent = []

        async def send(message):
            sent.append(message)
            if len(sent) == 3:  # the client goes after two pieces
                await incoming.put({"type": "http.disconnect"})

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        await asyncio.wait_for(WsgiInThreads(app, threads=1)(scope, incoming.get, send), 10)
        return len(sent)

    assert asyncio.run(run()) < 10 and closed.is_set()


def test_a_client_that_stops_reading_lets_the_thread_go(monkeypatch):
    monkeypatch.setattr("common.asgi.SEND_TIMEOUT", 0.2)
    closed = threading.Event()

    class Two:
        streaming = True

        def __iter__(self):
            yield b"x" * 70_000
            yield b"y" * 70_000

        def close(self):
            closed.set()

    def app(environ, start_response):
        start_response("200 OK", [])
        return Two()

    async def run() -> None:
        incoming = [{"type": "http.request", "body": b""}]

        async def receive():
            if incoming:
                return incoming.pop()
            await asyncio.sleep(3600)  # never sends anything more, never leaves

        async def send(message):
            if message.get("body"):
                await asyncio.sleep(3600)  # its socket buffer is full: the send blocks

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        await asyncio.wait_for(WsgiInThreads(app, threads=1)(scope, receive, send), 5)

    asyncio.run(run())
    assert closed.is_set()


def limited(body_parts: list[bytes], headers: list, limit: int = 10) -> tuple[list[dict], list]:
    """Run BodyLimit(limit) over an app that reads the whole body; (sent, what it read)."""
    read = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            read.append(message["body"])
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    incoming = [
        {"type": "http.request", "body": part, "more_body": i < len(body_parts) - 1}
        for i, part in enumerate(body_parts)
    ]
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(BodyLimit(app, limit)(scope, receive, send))
    return sent, read


def test_a_body_within_the_limit_goes_through():
    sent, read = limited([b"12345", b"67890"], [])
    assert sent[0]["status"] == 200 and read == [b"12345", b"67890"]


def test_a_body_declared_over_the_limit_is_refused_unread():
    sent, read = limited([b"x" * 11], [(b"content-length", b"11")])
    assert sent[0]["status"] == 413 and read == []


def test_a_chunked_body_that_grows_over_the_limit_is_refused():
    sent, read = limited([b"123456", b"789012", b"never read"], [])
    assert [m.get("status") for m in sent][:1] == [413] and b"never read" not in read


def test_api_slots_let_in_so_many_at_once_and_a_waiting_request_gives_its_place_back():
    inside = 0
    most = 0

    async def app(scope, receive, send):
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.05)
        inside -= 1
        if scope["path"] == "/wait":
            async with slot_released():
                await asyncio.sleep(0.3)

    async def run() -> float:
        slots = Slots(app, 2)
        started = asyncio.get_running_loop().time()
        waiting = [slots({"path": "/wait"}, None, None) for _ in range(4)]
        await asyncio.gather(*waiting, *[slots({"path": "/"}, None, None) for _ in range(4)])
        return asyncio.get_running_loop().time() - started

    took = asyncio.run(run())
    assert most == 2
    # Four waits of 0.3 s with two slots would take 0.6 s if they kept their slots.
    assert took < 0.55, took
