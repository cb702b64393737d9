"""Quotas over the API: set on the tenant and its bots, read back against use (usage)."""

from datetime import UTC, datetime

import pytest

from channels_im.models import Bot
from conversations.models import Message
from tests.factories import BotFactory, ConversationFactory, MessageFactory, counted_question

pytestmark = pytest.mark.django_db

QUOTAS = {
    "time_zone": "Europe/Berlin",
    "quota_messages_per_day": 2000,
    "quota_tokens_per_month": 5_000_000_000,  # past 2**31: a big integer column
    "user_quota_messages_per_day": 50,
    "user_quota_tokens_per_month": 200_000,
}


def test_the_tenant_sets_its_quotas_and_time_zone(api, tenant_a):
    assert api.get("/api/v1/tenant/").json()["time_zone"] == "Asia/Shanghai"

    response = api.patch("/api/v1/tenant/", QUOTAS, format="json")

    assert response.status_code == 200, response.json()
    assert {name: response.json()[name] for name in QUOTAS} == QUOTAS
    tenant_a.refresh_from_db()
    assert {name: getattr(tenant_a, name) for name in QUOTAS} == QUOTAS


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("time_zone", "Mars/Olympus_Mons", 'Unknown time zone "Mars/Olympus_Mons"'),
        ("time_zone", "", "may not be blank"),
        ("quota_messages_per_day", -1, "greater than or equal to 0"),
        ("user_quota_messages_per_day", 10**8, "less than or equal to 10000000"),
        ("quota_tokens_per_month", 10**13, "less than or equal to 1000000000000"),
        ("user_quota_tokens_per_month", "lots", "A valid biginteger is required."),
    ],
)
def test_a_bad_quota_or_time_zone_is_a_400_naming_it(api, tenant_a, field, value, says):
    response = api.patch(
        "/api/v1/tenant/", {field: value}, format="json", HTTP_ACCEPT_LANGUAGE="en"
    )

    assert response.status_code == 400
    [message] = response.json()["errors"][field]
    assert says in message
    tenant_a.refresh_from_db()
    assert getattr(tenant_a, field) in ("Asia/Shanghai", 0)


def test_a_bot_sets_its_own_quotas(api, tenant_a):
    bot = BotFactory(tenant=tenant_a)
    path = f"/api/v1/bots/{bot.public_id}/"
    body = {"quota_messages_per_day": 500, "quota_tokens_per_month": 1_000_000}

    assert api.patch(path, body, format="json").status_code == 200

    assert api.get(path).json() | body == api.get(path).json()
    refused = api.patch(path, {"quota_messages_per_day": -5}, format="json")
    assert refused.status_code == 400 and "quota_messages_per_day" in refused.json()["errors"]
    assert Bot.objects.get(pk=bot.pk).quota_messages_per_day == 500


def test_another_tenants_bot_is_not_found(api, tenant_b):
    bot = BotFactory(tenant=tenant_b)
    path = f"/api/v1/bots/{bot.public_id}/"
    assert api.patch(path, {"quota_messages_per_day": 1}, format="json").status_code == 404
    assert Bot.objects.get(pk=bot.pk).quota_messages_per_day == 0


def test_usage_shows_use_against_quota_of_the_tenant_each_bot_and_a_person(api, tenant_a):
    tenant_a.quota_messages_per_day, tenant_a.user_quota_tokens_per_month = 100, 1000
    tenant_a.save()
    helpdesk = BotFactory(tenant=tenant_a, name="helpdesk", quota_tokens_per_month=300)
    other = BotFactory(tenant=tenant_a, name="other")
    counted_question(helpdesk, "zhangsan", tokens=120)
    counted_question(helpdesk, "lisi", tokens=30, estimated=True)
    counted_question(other, "zhangsan", tokens=5)

    quota = api.get("/api/v1/usage/", {"user": "zhangsan"}).json()["quota"]

    assert quota["time_zone"] == "Asia/Shanghai"
    assert quota["day_resets_at"].endswith("T00:00:00+08:00")
    assert quota["month_resets_at"][8:] == "01T00:00:00+08:00"
    figures = ("messages_today", "messages_per_day", "tokens_this_month", "estimated_tokens")
    assert [quota["tenant"][name] for name in figures] == [3, 100, 155, 30]
    assert quota["tenant"]["tokens_per_month"] is None  # no quota
    assert quota["bots"] == [
        {"bot": str(helpdesk.public_id), "name": "helpdesk", "messages_today": 2,
         "messages_per_day": None, "tokens_this_month": 150, "estimated_tokens": 30,
         "tokens_per_month": 300},
        {"bot": str(other.public_id), "name": "other", "messages_today": 1,
         "messages_per_day": None, "tokens_this_month": 5, "estimated_tokens": 0,
         "tokens_per_month": None},
    ]  # fmt: skip
    assert quota["user"] == {
        "user": "zhangsan", "messages_today": 2, "messages_per_day": None,
        "tokens_this_month": 125, "estimated_tokens": 0, "tokens_per_month": 1000,
    }  # fmt: skip
    assert api.get("/api/v1/usage/").json()["quota"]["user"] is None


def test_usage_shows_nothing_of_another_tenant(api, tenant_a, tenant_b):
    counted_question(BotFactory(tenant=tenant_b), "zhangsan", tokens=99)

    quota = api.get("/api/v1/usage/", {"user": "zhangsan"}).json()["quota"]

    assert quota["bots"] == []
    assert quota["tenant"]["messages_today"] == quota["user"]["messages_today"] == 0
    assert quota["user"]["tokens_this_month"] == 0


@pytest.mark.parametrize(("zone", "day"), [("Asia/Shanghai", "2026-05-11"), ("UTC", "2026-05-10")])
def test_usage_days_follow_the_tenants_time_zone(api, tenant_a, zone, day):
    tenant_a.time_zone = zone
    tenant_a.save()
    question = MessageFactory(conversation=ConversationFactory(bot=BotFactory(tenant=tenant_a)))
    late_evening = datetime(2026, 5, 10, 17, 0, tzinfo=UTC)  # 01:00 the next day in Shanghai
    Message.objects.filter(pk=question.pk).update(created_at=late_evening)

    [row] = api.get("/api/v1/usage/").json()["results"]

    assert row["key"] == day


def test_an_api_question_over_quota_is_final_and_told_once(
    api, tenant_a, eager_celery, django_capture_on_commit_callbacks
):
    tenant_a.user_quota_messages_per_day = 1
    tenant_a.save()

    def send():
        with django_capture_on_commit_callbacks(execute=True):
            sent = api.post("/api/v1/messages/", {"text": "你好", "user": "crm:1"}, format="json")
        return api.get(f"/api/v1/messages/{sent.json()['id']}/")

    assert send().json()["status"] == "answered"
    first, second = send(), send()

    assert (first.status_code, first.json()["status"]) == (200, "quota_exceeded")
    assert first.json()["answer"]["text"].startswith("Your daily quota of 1 message is used up")
    assert (second.status_code, second.json()["status"], second.json()["answer"]) == (
        200,
        "quota_exceeded",
        None,
    )
    usage = api.get("/api/v1/usage/", {"group_by": "user"}).json()["results"]
    assert (usage[0]["answered"], usage[0]["quota_exceeded"]) == (1, 2)


def test_the_schema_documents_the_quotas_with_examples(client):
    document = client.get("/api/v1/schema/?format=json").json()
    tenant = document["components"]["schemas"]["PatchedTenantRequest"]["properties"]
    assert {"time_zone", "quota_messages_per_day", "user_quota_tokens_per_month"} <= set(tenant)
    patch = document["paths"]["/api/v1/tenant/"]["patch"]["requestBody"]["content"]
    assert patch["application/json"]["examples"]["Quotas"]["value"]["user_quota_messages_per_day"]
    bot = document["paths"]["/api/v1/bots/{public_id}/"]["patch"]["requestBody"]["content"]
    assert bot["application/json"]["examples"]["Quotas"]["value"]["quota_messages_per_day"]
    usage = document["components"]["schemas"]["Usage"]["properties"]
    assert "quota" in usage
