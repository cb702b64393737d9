"""The Redis cache backend (common/cache.py): Django's, with one client per pool."""

import threading

import pytest
from django.conf import settings
from django.core.cache import caches

pytestmark = pytest.mark.skipif(
    not settings.CACHE_URL.startswith("redis"), reason="CACHE_URL is not Redis (CI's is)"
)


def test_every_command_of_the_process_goes_through_one_client_of_its_pool():
    client = caches["default"]._cache
    seen = []

    def use():
        caches["default"].set("cache-test", "x", 10)
        seen.append(client.get_client(write=True))

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert caches["default"].get("cache-test") == "x"
    assert len({id(c) for c in [*seen, client.get_client()]}) == 1


def test_a_cache_that_cannot_be_reached_still_raises_on_a_command(settings):
    settings.CACHES = {
        "default": {"BACKEND": "common.cache.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    }
    with pytest.raises(Exception, match="[Cc]onnect"):
        caches["default"].get("cache-test")
