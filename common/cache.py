"""Django's Redis cache backend, keeping one Redis client per connection pool.

Django's client builds a new `redis.Redis` for every command, and each one fills a table
of some 170 response callbacks: a third of a callback's cache time went there. Django
keeps a cache object per thread; each now keeps one `redis.Redis` per pool for all its
commands (a command borrows a connection from the pool, which starts afresh after a fork).
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends import redis


class RedisCacheClient(redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        """The client of the pool Django would pick for `key` (reads may go to replicas)."""
        # Django's own attributes, which django-stubs leaves out.
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        if (client := self._clients.get(id(pool))) is None:
            new = self._client(connection_pool=pool)  # type: ignore[attr-defined]
            client = self._clients[id(pool)] = new
        return client


class RedisCache(redis.RedisCache):
    """settings.CACHES' backend for a `redis://` CACHE_URL."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
