"""Per-tenant and per-user message limits, in fixed one-minute windows.

Counters live in the cache: with Redis, `incr` is atomic across every web process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache

from tenants.models import Tenant

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Verdict:
    limited: bool
    notify: bool = False  # first refusal for this user in this window: tell them


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
    try:
        count = cache.incr(key)  # one round trip once the window's counter exists
    except ValueError:
        # First message of the window; if another process added it meanwhile, count on it.
        count = 1 if cache.add(key, 1, WINDOW_SECONDS * 2) else cache.incr(key)
    return count > limit
