"""Per-tenant and per-user message limits, in fixed one-minute windows.

Counters live in the cache. With Redis (production) each is one atomic INCR+EXPIRE
round trip shared by every web process; other cache backends use Django's add/incr.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from tenants.models import Tenant

WINDOW_SECONDS = 60
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    limited: bool
    notify: bool = False  # first refusal for this user in this window: tell them


def check_or_allow(tenant: Tenant, user: str) -> Verdict:
    """`check`, but a cache outage lets the message through rather than strand its row
    (it is already stored, and a platform retry would be dropped as a duplicate)."""
    try:
        return check(tenant, user)
    except Exception:
        logger.exception("rate limits unavailable; letting the message through")
        return Verdict(limited=False)


def check(tenant: Tenant, user: str) -> Verdict:
    """Count one message against the limits; say whether it is over them."""
    window = int(time.time() // WINDOW_SECONDS)
    over = _over(f"rl:u:{tenant.pk}:{user}:{window}", tenant.user_rate_limit_per_minute) or _over(
        f"rl:t:{tenant.pk}:{window}", tenant.rate_limit_per_minute
    )
    if not over:
        return Verdict(limited=False)
    first = cache.add(f"rl:told:{tenant.pk}:{user}:{window}", 1, WINDOW_SECONDS * 2)
    return Verdict(limited=True, notify=first)


def _over(key: str, limit: int) -> bool:
    if limit == 0:
        return False
    return _count(key) > limit


def _count(key: str) -> int:
    """Add one to the window's counter and return it."""
    ttl = WINDOW_SECONDS * 2
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        key = backend.make_and_validate_key(key)
        # EXPIRE … NX (Redis 7): only the window's first message sets the lifetime.
        with backend._cache.get_client(key, write=True).pipeline() as pipe:
            count, _ = pipe.incr(key).expire(key, ttl, nx=True).execute()
        return count
    try:
        return cache.incr(key)
    except ValueError:
        # First message of the window; if another process added it meanwhile, count on it.
        return 1 if cache.add(key, 1, ttl) else cache.incr(key)
