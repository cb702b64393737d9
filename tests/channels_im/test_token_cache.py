"""Access tokens: fetched once, shared through the cache, remembered by each process."""

import threading
import time

import pytest
from django.core.cache import cache

from channels_im.platforms.base import DeliveryError
from channels_im.platforms.client import TokenCache


class Platform:
    """Hands out numbered tokens, taking `seconds` for each, and counts the fetches."""

    def __init__(self, expires_in: int = 7200, seconds: float = 0.0):
        self.fetches = 0
        self.expires_in = expires_in
        self.seconds = seconds
        self.failing = False

    def fetch(self) -> tuple[str, int]:
        time.sleep(self.seconds)
        self.fetches += 1
        if self.failing:
            raise DeliveryError("token endpoint down")
        return f"token-{self.fetches}", self.expires_in


def test_a_token_is_fetched_once_and_then_served_without_the_shared_cache():
    platform = Platform()
    tokens = TokenCache("test:app", platform.fetch)
    assert tokens.get() == "token-1"
    cache.clear()  # another process's view is gone; this process still knows the token
    assert tokens.get() == "token-1"
    assert platform.fetches == 1


def test_another_process_takes_the_shared_token():
    platform = Platform()
    TokenCache("test:app", platform.fetch).get()
    TokenCache.forget_all()  # a new process: nothing remembered, the cache still shared
    assert TokenCache("test:app", platform.fetch).get() == "token-1"
    assert platform.fetches == 1


def test_invalidate_forgets_the_token_here_and_in_the_cache():
    platform = Platform()
    tokens = TokenCache("test:app", platform.fetch)
    tokens.get()
    tokens.invalidate("token-1")
    TokenCache.forget_all()
    assert tokens.get() == "token-2"


def test_a_token_refused_here_leaves_the_one_another_process_fetched_since():
    platform = Platform()
    tokens = TokenCache("test:app", platform.fetch)
    tokens.get()  # remembered here
    # The platform revoked it; another process was refused first and fetched a new one.
    cache.set(tokens.key, ("token-from-elsewhere", time.time() + 3600))
    tokens.invalidate("token-1")
    assert tokens.get() == "token-from-elsewhere"
    assert platform.fetches == 1


def test_a_token_is_refreshed_ahead_of_its_expiry(monkeypatch):
    import time

    platform = Platform(expires_in=7200)
    tokens = TokenCache("test:app", platform.fetch)
    tokens.get()
    later = time.time() + 7200 - TokenCache.EARLY_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    assert tokens.get() == "token-2"


def test_a_stale_copy_here_takes_the_token_another_process_already_refreshed():
    import time

    platform = Platform()
    tokens = TokenCache("test:app", platform.fetch)
    tokens.get()
    TokenCache._remembered[tokens.key] = ("token-1", 0.0)  # due for refresh here
    cache.set(tokens.key, ("refreshed-elsewhere", time.time() + 3600))
    assert tokens.get() == "refreshed-elsewhere"
    assert platform.fetches == 1


def test_processes_that_need_the_token_at_once_fetch_it_once():
    platform = Platform(seconds=0.3)
    start = threading.Barrier(5)
    got: list[str] = []

    def process() -> None:  # threads stand for processes: they share only the cache
        start.wait()
        got.append(TokenCache("test:app", platform.fetch).get())

    threads = [threading.Thread(target=process) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (got, platform.fetches) == (["token-1"] * 5, 1)


def test_a_failed_fetch_leaves_the_next_one_free_to_fetch():
    platform = Platform()
    tokens = TokenCache("test:app", platform.fetch)
    platform.failing = True
    with pytest.raises(DeliveryError):
        tokens.get()
    platform.failing = False
    assert tokens.get() == "token-2"  # at once: the failed fetch kept no lock


def test_a_fetch_whose_process_died_holds_the_others_up_only_until_its_lock_runs_out(settings):
    settings.IM_HTTP_TIMEOUT = 0.5  # a fetch may take a second: connect, then read
    platform = Platform()
    cache.add("im:access-token:test:app:fetching", 1, 1)  # what the dead process left
    started = time.monotonic()
    assert TokenCache("test:app", platform.fetch).get() == "token-1"
    assert 0.5 < time.monotonic() - started < 3
