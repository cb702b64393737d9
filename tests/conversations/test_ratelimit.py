"""The rate limits on the configured cache (Redis in CI, its script; else Django's
add/incr): each message counted once, whatever copies of it the platform sends."""

import warnings

import pytest
from django.core.cache import CacheKeyWarning

from conversations.ratelimit import check
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    return TenantFactory(user_rate_limit_per_minute=1, rate_limit_per_minute=100)


def test_a_copy_gets_its_first_copys_verdict_counts_nothing_and_tells_no_one_again(tenant):
    assert not check(tenant, "alice", "bot:m1").limited
    refused = check(tenant, "alice", "bot:m2")
    assert (refused.limited, refused.notify, refused.reason) == (True, True, "rate_limit_user")

    copy = check(tenant, "alice", "bot:m2")
    assert (copy.limited, copy.notify, copy.reason) == (True, False, "rate_limit_user")
    # A copy of the message let through is let through, though alice is over her limit.
    assert not check(tenant, "alice", "bot:m1").limited
    assert not check(tenant, "bob", "bot:m3").limited  # the copies used up no one's


def test_a_message_without_an_id_is_counted_each_time(tenant):
    assert not check(tenant, "alice", "").limited
    assert check(tenant, "alice", "").limited


def test_without_limits_nothing_is_counted(tenant):
    tenant.user_rate_limit_per_minute = tenant.rate_limit_per_minute = 0
    for n in range(3):
        assert not check(tenant, "alice", f"bot:m{n}").limited
    tenant.user_rate_limit_per_minute = 1
    assert not check(tenant, "alice", "bot:m9").limited  # the first one it counts


@pytest.mark.parametrize(
    "user", ["Rate limited", "钉钉 用户", "u" * 300], ids=["space", "cjk", "long"]
)
def test_any_user_id_makes_a_valid_cache_key(tenant, user):
    """A user id is the platform's (or an API client's) text: a space or a length that a
    cache key may not have must neither warn nor break the count."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        assert not check(tenant, user, "bot:m1").limited
        assert check(tenant, user, "bot:m2").limited
        assert not check(tenant, "someone else", "bot:m3").limited
