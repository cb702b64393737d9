"""kombu's Redis transport, with one Redis client per channel for its commands.

kombu's Redis channel builds a new `redis.Redis` for every command it sends outside its
polling loop (`Channel.conn_or_acquire`): every task published and every task
acknowledged. Building them took 14 % of the dispatcher's time at 150 questions a second
(py-spy): redis-py sets up its retry and its response callbacks each time. A client holds
no connection of its own: each command still takes one from the channel's pool and gives
it back, so one client serves the channel for as long as it lives, as the channel's own
`client` (its polling loop's) already does.

`install` makes it the transport of redis:// and rediss:// URLs in this process (the
Celery app calls it). Written against kombu 5.7 (kombu/transport/redis.py), whose
`conn_or_acquire` yields the client given, else a new one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, redis


def install() -> None:
    """Make `Transport` the one of redis:// and rediss:// URLs, through kombu's table of
    URL schemes (read at each connection). Everything else the scheme means to kombu
    stays: rediss: is TLS, and a failover to the next URL keeps this transport (Celery's
    `broker_transport` would replace the scheme, and rediss: would lose its TLS)."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"


class Channel(redis.Channel):
    """kombu's Redis channel, sending the commands of its sync pool through one client."""

    _commands: Any = None  # the client of the commands sent outside the polling loop

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if not client:
            # A new pool (after a fork, or once the channel dropped its pools) gets a
            # client of its own.
            if self._commands is None or self._commands.connection_pool is not self.pool:
                self._commands = self._create_client()
            client = self._commands
        yield client


class Transport(redis.Transport):
    """kombu's Redis transport (redis:// and rediss:// URLs, its options and all) with
    `Channel` above."""

    Channel = Channel
