"""The WSGI application served from the event loop by a pool of threads: what the
application sees, and what the client gets."""

import asyncio
import threading

from common.wsgi_threads import WsgiInThreads


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
        for chunk in (b"a", b"b", b"c"):
            self.threads.add(threading.get_ident())
            yield chunk

    def close(self):
        self.threads.add(threading.get_ident())


def test_a_streamed_response_goes_out_chunk_by_chunk_from_one_thread():
    response = Streamed()

    def app(environ, start_response):
        start_response("200 OK", [])
        response.threads.add(threading.get_ident())
        return response

    sent = serve(app, {}, [b""])
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert bodies == [b"a", b"b", b"c", b""]
    assert [m.get("more_body", False) for m in sent[1:]] == [True, True, True, False]
    assert len(response.threads) == 1 and threading.get_ident() not in response.threads


def test_a_client_that_leaves_before_its_body_arrived_gets_nothing_run():
    ran = []

    def app(environ, start_response):
        ran.append(True)
        start_response("200 OK", [])
        return [b""]

    assert serve(app, {"method": "POST"}, [b"part", b"rest"], disconnect=True) == []
    assert not ran
