"""Quotas and the time zone in `apply_config`: applied, and refused with the field's path."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import translation

from channels_im.models import Bot
from tenants.config import ConfigError, apply_config
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

QUOTAS = {
    "time_zone": "Asia/Tokyo",
    "quota_messages_per_day": 2000,
    "quota_tokens_per_month": 5_000_000_000,
    "user_quota_messages_per_day": 50,
    "user_quota_tokens_per_month": 200_000,
}


def tree(tenant: dict[str, Any] | None = None, bot: dict[str, Any] | None = None) -> Any:
    api_bot = {"name": "api", "platform": "api", **(bot or {})}
    return {"tenants": [{"slug": "acme", "name": "Acme", **(tenant or {}), "bots": [api_bot]}]}


def test_it_sets_the_tenants_and_a_bots_quotas_and_a_second_run_changes_nothing():
    bot_quotas = {"quota_messages_per_day": 300, "quota_tokens_per_month": 90_000}

    apply_config(tree(QUOTAS, bot_quotas))

    acme = Tenant.objects.get(slug="acme")
    assert {name: getattr(acme, name) for name in QUOTAS} == QUOTAS
    bot = Bot.objects.get(tenant=acme, name="api")
    assert {name: getattr(bot, name) for name in bot_quotas} == bot_quotas
    assert {change.action for change in apply_config(tree(QUOTAS, bot_quotas))} == {"unchanged"}


def test_a_tenant_left_without_them_has_no_quotas_in_shanghai_time():
    apply_config(tree())
    acme = Tenant.objects.get(slug="acme")
    assert acme.time_zone == "Asia/Shanghai"
    assert acme.quota_messages_per_day == acme.user_quota_tokens_per_month == 0


def test_every_bad_quota_is_reported_with_its_path_and_nothing_is_written():
    bad = {
        "time_zone": "Asia/Beijing",
        "quota_messages_per_day": -1,
        "user_quota_tokens_per_month": "lots",
        "user_quota_messages_per_day": True,
        "quota_tokens_per_month": 10**13,
    }

    with pytest.raises(ConfigError) as error:
        apply_config(tree(bad, {"quota_messages_per_day": 10**8}))

    assert sorted(error.value.errors) == [
        "tenants[0].user_quota_messages_per_day: expected an integer, got a boolean",
        "tenants[0].user_quota_tokens_per_month: expected an integer, got a string",
    ]
    del bad["user_quota_tokens_per_month"], bad["user_quota_messages_per_day"]

    with pytest.raises(ConfigError) as error, translation.override("en"):
        apply_config(tree(bad, {"quota_messages_per_day": 10**8}))

    assert sorted(error.value.errors) == [
        "tenants[0].bots[0].quota_messages_per_day: "
        "Ensure this value is less than or equal to 10000000.",
        "tenants[0].quota_messages_per_day: Ensure this value is greater than or equal to 0.",
        "tenants[0].quota_tokens_per_month: "
        "Ensure this value is less than or equal to 1000000000000.",
        'tenants[0].time_zone: Unknown time zone "Asia/Beijing": use an IANA name such as '
        "Asia/Shanghai or UTC.",
    ]
    assert not Tenant.objects.exists()
