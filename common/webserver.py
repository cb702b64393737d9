"""The web process's server: uvicorn's worker under gunicorn, serving the ASGI application,
with a deadline for each request to arrive.

Why ASGI: a REST client may wait minutes on an answer (`wait`, or a server-sent event
stream). Under a threaded WSGI worker each such client holds a thread, and fifty of them
hold every thread the platforms' callbacks need (WeCom gives up after 5 s, Feishu after
3 s). Here connections live on one event loop per process: a waiting client costs a
coroutine (`conversations/api/watch.py`), and each request's synchronous code (every
callback and view) runs in a thread of its own for as long as that code runs, never
while a client is slow to send or to be answered.

uvicorn has no deadline for a request to arrive: a client sending its head a byte every
few seconds would keep its connection, and its memory, for good. Here a client that has
not sent its head within WEB_HEADER_TIMEOUT seconds of starting a request, or then its
body within WEB_BODY_TIMEOUT, is disconnected, as is one whose head outgrows
MAX_HEAD_BYTES.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker


def seconds(name: str, default: float, low: float, high: float) -> float:
    """A number of seconds from the environment, in [low, high]; ValueError naming the
    variable otherwise (gunicorn then refuses to start, saying why)."""
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must lie between {low:g} and {high:g} seconds, not {value:g}")
    return value


HEADER_TIMEOUT = seconds("WEB_HEADER_TIMEOUT", 10, 0.5, 300)
BODY_TIMEOUT = seconds("WEB_BODY_TIMEOUT", 30, 0.5, 600)
# No client of ours sends this much head; httptools itself sets no bound.
MAX_HEAD_BYTES = 64 * 1024


class HeadTooLarge(Exception):
    """A request head past MAX_HEAD_BYTES (httptools then answers 400 and closes)."""


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's head, then its body,
    a bound on the head's size, and no header whose name has an underscore (gunicorn
    drops those too: a proxy that filters `X-Forwarded-Proto` may pass
    `X_Forwarded_Proto`, which would read the same)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline: asyncio.TimerHandle | None = None
        self.head_bytes = 0
        self._start_deadline(HEADER_TIMEOUT)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_bytes = 0
        if self.deadline is None and not self._answering():
            self._start_deadline(HEADER_TIMEOUT)  # a kept-alive connection's next request

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        if b"_" not in name:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._start_deadline(BODY_TIMEOUT)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _start_deadline(self, after: float) -> None:
        self._stop_deadline()
        self.deadline = self.loop.call_later(after, self._out_of_time)

    def _stop_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _out_of_time(self) -> None:
        self.deadline = None
        if self._answering():
            return  # a pipelined request behind one still answered: that one finishes
        self.logger.debug("Closing a connection whose request did not arrive in time.")
        self.transport.close()


class Worker(UvicornWorker):
    """gunicorn's worker for the ASGI application: uvloop, httptools with deadlines, no
    lifespan events (Django sends none), no WebSocket."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        "http": DeadlineProtocol,
        "lifespan": "off",
        "ws": "none",
        "server_header": False,
    }
