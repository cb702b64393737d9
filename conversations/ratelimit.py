"""Per-tenant and per-user message limits, in fixed one-minute windows.

Counters live in the cache. With Redis (production) both are counted by one script,
atomic and in one round trip, shared by every web process; other cache backends use
Django's add/incr.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from dataclasses import dataclass

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.commands.core import Script

from tenants.models import Tenant

WINDOW_SECONDS = 60
# How long a message's verdict is kept for its copies: longer than the longest retry
# window of the platforms (Feishu's last retry comes about 7 h after the first push).
SEEN_SECONDS = 12 * 3600
logger = logging.getLogger(__name__)

# KEYS: the message's seen-key ("": none), then counters in turn; ARGV: the counters'
# lifetime, the seen-key's, then each counter's limit (0: none). Counts the message on
# each counter in turn, stopping at the first one over its limit, and returns that
# counter's number (0: none is over), kept in the seen-key: a copy of the message (a
# platform's retry) counts nothing and gets the first one's verdict v as -1 - v.
COUNT_ONCE = """
if KEYS[1] ~= '' then
  local before = redis.call('GET', KEYS[1])
  if before then return -1 - tonumber(before) end
end
local over = 0
for i = 2, #KEYS do
  local limit = tonumber(ARGV[i + 1])
  if limit > 0 then
    local count = redis.call('INCR', KEYS[i])
    if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
    if count > limit then
      over = i - 1
      break
    end
  end
end
if KEYS[1] ~= '' then redis.call('SET', KEYS[1], over, 'EX', ARGV[2]) end
return over
"""


@dataclass(frozen=True)
class Verdict:
    limited: bool
    notify: bool = False  # first refusal for this user in this window: tell them
    reason: str = ""  # which limit refused it: "rate_limit_user" or "rate_limit_tenant"


def check_or_allow(tenant: Tenant, user: str, event: str) -> Verdict:
    """`check`, but a cache outage lets the message through: better an answer too many
    than a person left without one."""
    try:
        return check(tenant, user, event)
    except Exception:
        logger.exception("rate limits unavailable; letting the message through")
        return Verdict(limited=False)


def check(tenant: Tenant, user: str, event: str) -> Verdict:
    """Count one message against the limits; say whether it is over them.

    `event` names the message across its copies (its bot and the platform's message id;
    "" when it has none): a platform's retry counts nothing and gets the verdict its first
    copy got, without another notice, so that copies racing each other are stored alike
    and the intake can store each message with its verdict in one statement. Without
    limits, nothing is counted.
    """
    per_user, per_tenant = tenant.user_rate_limit_per_minute, tenant.rate_limit_per_minute
    if not per_user and not per_tenant:
        return Verdict(limited=False)
    # Hashed: a user's id is the platform's text, of any length and characters, which a
    # cache key may not be.
    who = _digest(user)
    window = int(time.time() // WINDOW_SECONDS)
    counters = [
        (f"rl:u:{tenant.pk}:{who}:{window}", per_user),
        (f"rl:t:{tenant.pk}:{window}", per_tenant),
    ]
    seen = f"rl:seen:{_digest(event)}" if event else ""
    over, copy = _count_once(seen, counters)
    if not over:
        return Verdict(limited=False)
    first = not copy and cache.add(f"rl:told:{tenant.pk}:{who}:{window}", 1, WINDOW_SECONDS * 2)
    return Verdict(limited=True, notify=first, reason=REASONS[over - 1])


def _digest(text: str) -> str:
    """A user's or a message's id (a platform's or an API client's text) as 32 hex digits."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# Why a message was refused, by the number of the counter over its limit.
REASONS = ("rate_limit_user", "rate_limit_tenant")


def _count_once(seen: str, counters: list[tuple[str, int]]) -> tuple[int, bool]:
    """COUNT_ONCE: the number (from 1) of the first counter over its limit, 0 for none;
    and whether the cache key `seen` ("": none) shows a copy, whose number is its first
    copy's."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        keys = [backend.make_and_validate_key(seen) if seen else ""]
        keys += [backend.make_and_validate_key(key) for key, _ in counters]
        args = [WINDOW_SECONDS * 2, SEEN_SECONDS, *(limit for _, limit in counters)]
        result = int(_counting_script(backend)(keys=keys, args=args))
        return (result, False) if result >= 0 else (-1 - result, True)
    # Other backends (one process, in development): the same, not atomic.
    if seen and (before := cache.get(seen)) is not None:
        return before, True
    over = next(
        (n for n, (key, limit) in enumerate(counters, 1) if limit and _count(key) > limit), 0
    )
    if seen:
        cache.set(seen, over, SEEN_SECONDS)
    return over, False


@functools.cache
def _counting_script(backend: RedisCache) -> Script:
    """COUNT_ONCE, registered once per cache backend (one per thread), not a Redis
    client built and the script hashed for every message (0.32 ms a callback in issue
    14's profile)."""
    return backend._cache.get_client(None, write=True).register_script(COUNT_ONCE)


def _count(key: str) -> int:
    """Add one to the window's counter and return it."""
    ttl = WINDOW_SECONDS * 2
    try:
        return cache.incr(key)
    except ValueError:
        # First message of the window; if another process added it meanwhile, count on it.
        return 1 if cache.add(key, 1, ttl) else cache.incr(key)
