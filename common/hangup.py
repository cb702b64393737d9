"""Closing an HTTP request from another thread, even while it waits for the first byte.

A streamed model answer may be stopped at any moment, also during the long wait before
its first token, when the requesting thread is blocked inside `requests` before any
response object exists. Ollama stops generating only when the connection closes, so
dropping the answer on our side is not enough: the socket itself must be shut down.

`Hangup.armed()` marks the next request the current thread sends: its connection hands
its socket to the hangup as it starts waiting for the response (`getresponse`), and
`hangup()` from any thread shuts that socket down, which wakes the blocked read at once.
The connections come from urllib3's pool classes, which requests lets an adapter choose
(`HangupAdapter`, mounted by `common.http` on every session). A request through a SOCKS
proxy uses other classes and cannot be closed this way; `requested` still says so, for
the reader to stop at the next line.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

_armed = threading.local()


class Hangup:
    """A request that any thread may close; `requested` says whether one did."""

    def __init__(self) -> None:
        self.requested = False
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    @contextmanager
    def armed(self) -> Iterator[None]:
        """Around one request on this thread, from sending it to closing its response:
        its connection is the one to close. Only the first request sent inside is
        attached (a call made on this thread while reading the answer is not); once it
        is over its connection may serve others, so it is detached."""
        _armed.hangup = self
        try:
            yield
        finally:
            _armed.hangup = None
            self._detach()

    def attach(self, sock: socket.socket) -> None:
        """The request's socket, now waiting for the response."""
        with self._lock:
            self._sock = sock
            if self.requested:
                _shut(sock)

    def _detach(self) -> None:
        with self._lock:
            self._sock = None

    def __call__(self) -> None:
        """Close the request now (from any thread); harmless once it is over."""
        with self._lock:
            self.requested = True
            if self._sock is not None:
                _shut(self._sock)


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would unwrap the TLS
    # object under the reading thread's feet. SHUT_RDWR wakes the reader with an end of
    # file and sends the peer a FIN, so the server sees the client gone right away.
    with suppress(OSError):  # closed already
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Attaching:
    """A connection that hands its socket to the hangup armed on the sending thread."""

    sock: socket.socket | None

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        hangup: Hangup | None = getattr(_armed, "hangup", None)
        if hangup is not None and self.sock is not None:
            _armed.hangup = None
            hangup.attach(self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Attaching, HTTPConnection):
    pass


class _HTTPSConnection(_Attaching, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class HangupAdapter(HTTPAdapter):
    """requests' adapter, with connections a `Hangup` can close (directly or through an
    HTTP proxy)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager
