"""The Redis cache backend (common/cache.py): Django's, with one client per pool."""

import threading

import pytest
from django.conf import settings
from django.core.cache import caches

pytestmark = pytest.mark.skipif(
    not settings.CACHE_URL.startswith("redis"), reason="CACHE_URL is not Redis (CI's is)"
)


def test_each_threads_commands_go_through_one_client_of_its_pool():
    clients = []

    def use():
        backend = caches["default"]  # one a thread
        backend.set("cache-test", "x", 10)
        assert backend.get("cache-test") == "x"
        # Kept alive, so that no id is reused.
        clients.append([backend._cache.get_client(write=w) for w in (True, False, True)])

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [len({id(client) for client in group}) for group in clients] == [1, 1, 1, 1]


def test_a_cache_that_cannot_be_reached_still_raises_on_a_command(settings):
    settings.CACHES = {
        "default": {"BACKEND": "common.cache.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    }
    with pytest.raises(Exception, match="[Cc]onnect"):
        caches["default"].get("cache-test")
