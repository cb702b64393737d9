"""Quotas in the admin: set on the tenant and bot pages, use shown there and per person."""

import pytest
from django.forms.models import model_to_dict
from django.urls import reverse

from conversations.models import QuotaUse
from tests.factories import BotFactory, counted_question

pytestmark = pytest.mark.django_db

QUOTA_USE = reverse("admin:conversations_quotause_changelist")


@pytest.fixture
def english(client):
    client.cookies["django_language"] = "en"
    return client


def tenant_form(tenant, **changes):
    data = model_to_dict(tenant, exclude=["id", "slug", "is_active"])
    data["temperature"] = data["temperature"] or ""
    return {**data, **changes}


def test_a_tenant_admin_sets_quotas_and_sees_use_against_them(english, admin_a, tenant_a):
    # Counted in the zone the page shows: Paris's day and Shanghai's differ for 7 hours
    # of every day, and a day's count starts over with the new zone's day.
    tenant_a.time_zone = "Europe/Paris"
    tenant_a.save()
    bot = BotFactory(tenant=tenant_a)
    counted_question(bot, "zhangsan", tokens=1500, estimated=True)
    counted_question(bot, "lisi")
    url = reverse("admin:tenants_tenant_change", args=[tenant_a.pk])
    english.force_login(admin_a)
    quotas_set = {"quota_messages_per_day": 10, "user_quota_tokens_per_month": 1000}

    response = english.post(url, tenant_form(tenant_a, time_zone="Europe/Paris", **quotas_set))

    assert response.status_code == 302, response.context["adminform"].form.errors
    tenant_a.refresh_from_db()
    assert (tenant_a.time_zone, tenant_a.quota_messages_per_day) == ("Europe/Paris", 10)
    page = english.get(url).content.decode()
    assert "2 of 10 messages today" in page
    assert "1,500 tokens this month, no quota (1,500 of them estimated)" in page
    assert "Days start at 00:00 Europe/Paris" in page


def test_a_bad_time_zone_is_refused_on_the_form(english, admin_a, tenant_a):
    url = reverse("admin:tenants_tenant_change", args=[tenant_a.pk])
    english.force_login(admin_a)

    response = english.post(url, tenant_form(tenant_a, time_zone="Peking"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["time_zone"] == [
        'Unknown time zone "Peking": use an IANA name such as Asia/Shanghai or UTC.'
    ]


def test_the_bot_page_shows_its_quota_and_use(english, admin_a, tenant_a):
    bot = BotFactory(tenant=tenant_a, quota_messages_per_day=5)
    counted_question(bot, "zhangsan")
    english.force_login(admin_a)

    page = english.get(reverse("admin:channels_im_bot_change", args=[bot.pk])).content.decode()

    assert 'name="quota_messages_per_day"' in page
    assert "1 of 5 messages today" in page


def test_everyones_use_is_listed_for_their_tenant_only(english, auditor_a, tenant_a, tenant_b):
    tenant_a.user_quota_messages_per_day = 20
    tenant_a.save()
    counted_question(
        BotFactory(tenant=tenant_a, name="helpdesk"), "zhangsan", tokens=700, estimated=True
    )
    counted_question(BotFactory(tenant=tenant_b, name="their-bot"), "outsider-person")
    english.force_login(auditor_a)

    page = english.get(QUOTA_USE).content.decode()

    assert "zhangsan" in page and "1 / 20" in page and "700 (700 estimated)" in page
    assert "helpdesk" in page and "(whole tenant)" in page
    assert "outsider-person" not in page and "their-bot" not in page
    theirs = QuotaUse.objects.get(tenant=tenant_b, scope="user")
    change = reverse("admin:conversations_quotause_change", args=[theirs.pk])
    assert english.get(change).status_code == 302  # as for a row that does not exist
