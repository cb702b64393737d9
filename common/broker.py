"""kombu's Redis transport, with one Redis client per channel for its commands.

kombu's Redis channel builds a new `redis.Redis` for every command it sends outside its
polling loop (`Channel.conn_or_acquire`): every task published and every task
acknowledged. Building one is the larger part of publishing (redis-py sets up its retry,
its response callbacks and a case-insensitive dict of them each time): 14 % of the
dispatcher's time at 150 questions a second (py-spy). A client holds no connection of
its own: each command still takes one from the channel's pool and gives it back, so
one client serves the channel for as long as it lives, as the channel's own `client`
(its polling loop's) already does.

settings.py names `Transport` as Celery's `broker_transport` for redis:// and rediss://
URLs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _commands: Any = None  # the client of the commands sent outside the polling loop

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client is None:
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
