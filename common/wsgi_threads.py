"""A WSGI application served from the ASGI event loop by a fixed pool of threads, one
handoff per request.

Django's ASGI handler runs a synchronous view at a cost: a new thread per request, and
a hop between the loop and that thread for each middleware's request and response
phases. For the platforms' callbacks, which must be acknowledged in milliseconds, that
doubled the web process's CPU per callback (bench/callback_latency.py). Here the loop
gathers the request (its head and body: the protocol's deadlines bound how long a
client may take), one pool thread runs Django's WSGI handler on it, and the loop sends
what it returned. A streamed response keeps its thread until the last chunk is sent,
since its iterator may hold a database cursor of that thread.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class WsgiInThreads:
    """An ASGI application (HTTP only) serving `app` with `threads` threads.

    Each request costs one thread for as long as `app` runs, and the thread's database
    connections persist from one request to the next as under a threaded WSGI server.
    """

    def __init__(self, app: WsgiApp, threads: int):
        self.app = app
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="wsgi")

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            return  # the client left before it finished sending
        loop = asyncio.get_running_loop()
        sent = _Sender(loop, send)
        await loop.run_in_executor(self.pool, self._serve, environ(scope, body), sent)
        await sent.flush()

    def _serve(self, environ: dict[str, Any], sent: _Sender) -> None:
        started: list[Message] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            started[:] = [
                {
                    "type": "http.response.start",
                    "status": int(status.split(" ", 1)[0]),
                    "headers": [
                        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers
                    ],
                }
            ]

        chunks = self.app(environ, start_response)
        try:
            if getattr(chunks, "streaming", False):
                sent.now(started[0])
                for chunk in chunks:
                    sent.now({"type": "http.response.body", "body": chunk, "more_body": True})
                sent.later([{"type": "http.response.body", "body": b""}])
            else:
                body = b"".join(chunks)
                sent.later([started[0], {"type": "http.response.body", "body": body}])
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # Django's request_finished: this thread's connections go back


class _Sender:
    """What the loop sends for one response: a streamed chunk at once (the thread waits
    for it to leave), a whole response once the thread is done."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Send):
        self.loop, self.send = loop, send
        self.pending: list[Message] = []

    def now(self, message: Message) -> None:
        asyncio.run_coroutine_threadsafe(self._send(message), self.loop).result()

    async def _send(self, message: Message) -> None:
        await self.send(message)

    def later(self, messages: list[Message]) -> None:
        self.pending = messages

    async def flush(self) -> None:
        for message in self.pending:
            await self.send(message)


async def _read_body(receive: Receive) -> bytes | None:
    """The request's body, gathered on the loop; None if the client disconnected."""
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def environ(scope: Message, body: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI HTTP scope (ASGI spec, HTTP connection
    scope): strings are the raw bytes decoded as latin-1, as WSGI wants them."""
    server_host, server_port = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
        "PATH_INFO": scope["path"].encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": server_host,
        "SERVER_PORT": str(server_port),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": (scope.get("client") or ("", 0))[0],
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        name, value = (
            raw_name.decode("latin-1").upper().replace("-", "_"),
            raw_value.decode("latin-1"),
        )
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[name] = value
            continue
        key = f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ.setdefault("CONTENT_LENGTH", str(len(body)))
    return environ
