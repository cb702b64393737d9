"""Access tokens: fetched once, shared through the cache, remembered by each process."""

from django.core.cache import cache

from channels_im.platforms.client import TokenCache


class Platform:
    """Hands out numbered tokens and counts the fetches."""

    def __init__(self, expires_in: int = 7200):
        self.fetches = 0
        self.expires_in = expires_in

    def fetch(self) -> tuple[str, int]:
        self.fetches += 1
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
    tokens.invalidate()
    TokenCache.forget_all()
    assert tokens.get() == "token-2"


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
