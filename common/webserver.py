"""gunicorn's threaded worker, with each request read whole before a thread takes it.

gthread hands a connection to a thread at its first byte, and the thread then waits on
the socket for the rest of the request: a few dozen clients sending their headers a byte
every few seconds hold every thread, and genuine callbacks queue behind them. Here the
worker's event loop, which waits on all sockets at once, gathers the request head and a
body of up to BUFFERED_BODY_BYTES; a thread gets the request only once it has arrived.
A client that has not sent its head within WEB_HEADER_TIMEOUT seconds, or then its body
within WEB_BODY_TIMEOUT, is disconnected. Larger or chunked bodies are read by the thread,
each read or write waiting at most WEB_BODY_TIMEOUT.

TLS terminated by gunicorn itself (certfile) keeps gthread's own behaviour: its bytes are
not readable before the handshake, which happens in the thread.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

from gunicorn.workers.gthread import TConn, ThreadWorker


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
# Callbacks are at most IM_MAX_BODY_BYTES (256 KiB by default); this bounds the memory a
# worker spends on clients still sending.
BUFFERED_BODY_BYTES = 256 * 1024
# No client of ours sends this much head; gunicorn's own limits would refuse it anyway.
MAX_HEAD_BYTES = 64 * 1024
_END_OF_HEAD = b"\r\n\r\n"


@dataclass
class _Arriving:
    """A request still arriving: its bytes so far and when its sender runs out of time."""

    deadline: float
    data: bytearray = field(default_factory=bytearray)
    body_length: int | None = None  # known once the head is in; None: the thread reads it

    def complete(self) -> bool:
        """Whether to hand the request to a thread; records the head's end once it is in."""
        end = self.data.find(_END_OF_HEAD)
        if end < 0:
            return False
        if self.body_length is None:
            length = _buffered_body_length(bytes(self.data[:end]))
            if length is None:
                return True
            self.body_length = length
            self.deadline = time.monotonic() + BODY_TIMEOUT
        return len(self.data) - end - len(_END_OF_HEAD) >= self.body_length


def _buffered_body_length(head: bytes) -> int | None:
    """The body's length if the event loop should gather it; None to leave it to the
    thread (chunked, too large, unparseable, or a client waiting for 100 Continue)."""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"transfer-encoding" or (name == b"expect" and value == b"100-continue"):
            return None
        if name == b"content-length":
            if not value.isdigit():
                return None  # gunicorn's parser answers it
            length = int(value)
    return length if length <= BUFFERED_BODY_BYTES else None


class BufferingThreadWorker(ThreadWorker):
    """gthread, reading each request (head and small body) in the event loop."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._arriving: dict[TConn, _Arriving] = {}

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        if self.cfg.is_ssl:
            super().on_client_socket_readable(conn, client)
            return
        arriving = self._arriving.get(conn)
        if arriving is None:
            if conn.initialized:  # a kept-alive connection starts its next request
                with self._lock:
                    try:
                        self._keep.remove(conn)
                    except ValueError:
                        return  # murder_keepalived closed it meanwhile
            arriving = self._arriving[conn] = _Arriving(time.monotonic() + HEADER_TIMEOUT)
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        arriving.data += chunk
        if not chunk or (len(arriving.data) > MAX_HEAD_BYTES and _END_OF_HEAD not in arriving.data):
            self._drop(conn)
        elif arriving.complete():
            self._hand_over(conn, bytes(arriving.data))

    def murder_keepalived(self) -> None:
        """Also disconnects clients that ran out of time sending a request; the run loop
        calls this at least once a second."""
        super().murder_keepalived()
        now = time.monotonic()
        for conn in [c for c, arriving in self._arriving.items() if arriving.deadline < now]:
            self.log.debug("Closing a connection whose request did not arrive in time.")
            self._drop(conn)

    def _hand_over(self, conn: TConn, data: bytes) -> None:
        del self._arriving[conn]
        with self._lock:
            self.poller.unregister(conn.sock)
        conn.init()  # blocking from here on, and the parser exists
        conn.parser.unreader.unread(data)  # read by the parser before the socket
        conn.sock.settimeout(BODY_TIMEOUT)
        self._wrap_future(self.tpool.submit(self.handle, conn), conn)

    def _drop(self, conn: TConn) -> None:
        del self._arriving[conn]
        with self._lock:
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()
