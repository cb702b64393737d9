"""The web process's ASGI pieces (assistant/asgi.py puts them together): a WSGI application
served from the event loop by a fixed pool of threads, one handoff per request; a bound
on request bodies; and a bound on the REST API's requests at work at once.

Django's ASGI handler runs a synchronous view at a cost: a new thread per request, and
a hop between the loop and that thread for each middleware's request and response
phases. For the platforms' callbacks, which must be acknowledged in milliseconds, that
doubled the web process's CPU per callback (bench/callback_latency.py). Here the loop
gathers the request (its head and body: the protocol's deadlines bound how long a
client may take), one pool thread runs Django's WSGI handler on it, and the loop sends
what it returned. A streamed response keeps its thread until the last chunk is sent,
since its iterator may hold a database cursor of that thread; it gives up when the
client leaves or stops reading for SEND_TIMEOUT seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import sys
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, AnyStr

Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
AsgiApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

# A client that reads nothing of a streamed response for this long is let go.
SEND_TIMEOUT = 30.0
# Parts of a streamed response gathered before one handoff to the loop (a file is read
# in 8 KiB blocks).
SEND_PIECE = 64 * 1024


class ClientGone(Exception):
    """The client left, or stopped reading, while a streamed response was being sent."""


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
        leaving = asyncio.create_task(sent.watch(receive))
        try:
            await loop.run_in_executor(self.pool, self._serve, environ(scope, body), sent)
            await sent.flush()
        finally:
            leaving.cancel()

    def _serve(self, environ: dict[str, Any], sent: _Sender) -> None:
        if sent.gone:
            # It hung up while the request waited for a thread: under a burst, work for
            # no one would only make every later request later (a platform sends again).
            return
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
                for piece in pieces(chunks, SEND_PIECE):
                    sent.now({"type": "http.response.body", "body": piece, "more_body": True})
                sent.later([{"type": "http.response.body", "body": b""}])
            else:
                body = b"".join(chunks)
                sent.later([started[0], {"type": "http.response.body", "body": body}])
        except ClientGone:
            pass  # nothing more to send to anyone
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
        self.gone = False

    async def watch(self, receive: Receive) -> None:
        """Mark the client gone once it disconnects (uvicorn's send then drops what is
        sent, silently)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True

    def now(self, message: Message) -> None:
        """Send `message` from the thread; ClientGone if the client left or does not
        take it within SEND_TIMEOUT."""
        if self.gone:
            raise ClientGone
        future = asyncio.run_coroutine_threadsafe(self._send(message), self.loop)
        try:
            future.result(SEND_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ClientGone from None

    async def _send(self, message: Message) -> None:
        await self.send(message)

    def later(self, messages: list[Message]) -> None:
        self.pending = messages

    async def flush(self) -> None:
        for message in self.pending:
            await self.send(message)


def pieces(parts: Iterable[AnyStr], size: int) -> Iterator[AnyStr]:
    """`parts` (bytes, or text) joined into pieces of `size` or a part more; the last
    may be smaller."""
    piece: list[AnyStr] = []
    length = 0
    for part in parts:
        piece.append(part)
        length += len(part)
        if length >= size:
            yield piece[0][:0].join(piece)
            piece, length = [], 0
    if piece:
        yield piece[0][:0].join(piece)


async def _read_body(receive: Receive) -> bytes | None:
    """The request's body, gathered on the loop (BodyLimit bounds it); None if the
    client disconnected."""
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


class BodyLimit:
    """An ASGI application refusing a request body over `max_bytes` with 413, whether its
    Content-Length says so or its chunks add up to it, before `app` holds it in memory."""

    def __init__(self, app: AsgiApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send)
            return
        received = 0
        over = False
        started = False

        async def bounded_receive() -> Message:
            nonlocal received, over
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                over = True
                return {"type": "http.disconnect"}  # the application stops reading
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        await self.app(scope, bounded_receive, tracked_send)
        if over and not started:
            await _too_large(send)


async def _too_large(send: Send) -> None:
    body = b'{"detail": "Request body too large.", "code": "too_large"}'
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_api_slots: ContextVar[asyncio.Semaphore | None] = ContextVar("api_slots", default=None)


class Slots:
    """An ASGI application letting at most `count` requests at a time into `app`; a
    request that waits (`slot_released`) gives its slot back meanwhile. The REST API's
    requests each run in a thread of their own with a pooled database connection: this
    bounds both, so API clients can never take the connections the callbacks need."""

    def __init__(self, app: AsgiApp, count: int):
        self.app, self.count = app, count
        self.semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self.semaphores = weakref.WeakKeyDictionary()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        semaphore = self.semaphores.setdefault(loop, asyncio.Semaphore(self.count))
        async with semaphore:
            token = _api_slots.set(semaphore)
            try:
                await self.app(scope, receive, send)
            finally:
                _api_slots.reset(token)


@asynccontextmanager
async def slot_released() -> AsyncIterator[None]:
    """Within a request admitted by `Slots`, give its slot back while the block waits
    (holding no thread and no connection), and take one again after."""
    semaphore = _api_slots.get()
    if semaphore is None:
        yield
        return
    semaphore.release()
    try:
        yield
    finally:
        await semaphore.acquire()
