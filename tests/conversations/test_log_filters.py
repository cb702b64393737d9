"""The log lists' filters and search in the admin: a period of days (inclusive, in
TIME_ZONE), bot, platform, user, chat and status; a search of the text that finds Chinese
substrings; each meaning what the REST API's filter of the same name means."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from conversations.models import Conversation, Message
from tests.factories import BotFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

MESSAGES = reverse("admin:conversations_message_changelist")
CONVERSATIONS = reverse("admin:conversations_conversation_changelist")
SHANGHAI = ZoneInfo("Asia/Shanghai")  # the settings' TIME_ZONE


def at(day, hour, minute=0, second=0):
    return datetime(2026, 3, day, hour, minute, second, tzinfo=SHANGHAI)


@pytest.fixture
def log(tenant_a, tenant_b):
    """Tenant A's questions on two bots around midnight, and tenant B's look-alikes."""
    helpdesk = BotFactory(tenant=tenant_a, name="helpdesk", platform="wecom")
    sales = BotFactory(tenant=tenant_a, name="sales", platform="feishu")
    rows = {}
    for name, bot, chat, sender, when, status, text in [
        ("late", helpdesk, "c1", "zhangsan", at(1, 23, 59, 59), "answered", "报销流程是什么？"),
        ("midnight", sales, "c2", "lisi", at(2, 0), "failed", "VPN 连不上"),
        ("evening", helpdesk, "c1", "zhangsan", at(3, 23, 59, 59), "answered", "Where is PRINTER"),
        ("next", helpdesk, "c3", "wangwu", at(4, 0), "rate_limited", "差旅报销"),
    ]:  # fmt: skip
        conversation = ConversationFactory(
            bot=bot, chat_id=chat, user_id=sender, last_activity_at=when
        )
        rows[name] = MessageFactory(
            conversation=conversation, sender=sender, status=status, content=text
        )
        Message.objects.filter(pk=rows[name].pk).update(created_at=when)
    other = BotFactory(tenant=tenant_b, name="b-bot", platform="feishu")
    other_chat = ConversationFactory(
        bot=other, chat_id="c1", user_id="zhangsan", last_activity_at=at(2, 12)
    )
    rows["other"] = MessageFactory(
        conversation=other_chat, sender="zhangsan", status="failed", content="报销流程 B"
    )
    Message.objects.filter(pk=rows["other"].pk).update(created_at=at(2, 12))
    return {"rows": rows, "helpdesk": helpdesk, "sales": sales, "other": other}


def listed(client, url, **query):
    response = client.get(url, query)
    assert response.status_code == 200, response.get("Location")
    return {row.pk for row in response.context["cl"].result_list}


def names(log, *wanted):
    return {log["rows"][name].pk for name in wanted}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ("late", "midnight", "evening", "next")),
        # Days are whole and inclusive, in TIME_ZONE: 23:59:59 of the 1st is out, 00:00
        # of the 2nd in, 23:59:59 of the 3rd in, 00:00 of the 4th out.
        ({"from": "2026-03-02", "to": "2026-03-03"}, ("midnight", "evening")),
        ({"from": "2026-03-03"}, ("evening", "next")),
        ({"to": "2026-03-01"}, ("late",)),
        ({"from": "2026-03-02", "to": ""}, ("midnight", "evening", "next")),
        ({"platform": "feishu"}, ("midnight",)),
        ({"user": "zhangsan"}, ("late", "evening")),
        ({"chat": "c1"}, ("late", "evening")),
        ({"status__exact": "failed"}, ("midnight",)),
        ({"user": "zhangsan", "from": "2026-03-02"}, ("evening",)),
        # Search: a substring of the text, in any case; Chinese has no spaces to split at.
        ({"q": "报销"}, ("late", "next")),
        ({"q": "流程是"}, ("late",)),
        ({"q": "连不上"}, ("midnight",)),
        ({"q": "printer"}, ("evening",)),
        ({"q": "where printer"}, ("evening",)),  # every word, anywhere
        ({"q": "报销", "chat": "c3"}, ("next",)),
        ({"q": "zhangsan"}, ()),  # the text only: the user has a filter
    ],
)
def test_the_message_list_filters_and_searches(client, auditor_a, log, query, expected):
    client.force_login(auditor_a)
    assert listed(client, MESSAGES, **query) == names(log, *expected)


def test_the_bot_filter_offers_and_selects_the_tenants_bots(client, auditor_a, log):
    client.force_login(auditor_a)
    assert listed(client, MESSAGES, bot__id__exact=log["sales"].pk) == names(log, "midnight")
    page = client.get(MESSAGES).content.decode()
    assert "sales" in page and "b-bot" not in page


@pytest.mark.parametrize(
    "query",
    [{"platform": "feishu"}, {"user": "zhangsan"}, {"q": "报销流程"}, {"chat": "c1"}],
)
def test_no_filter_reaches_another_tenants_rows(client, auditor_a, log, query):
    client.force_login(auditor_a)
    assert log["rows"]["other"].pk not in listed(client, MESSAGES, **query)
    assert log["rows"]["other"].pk not in listed(
        client, MESSAGES, tenant__id__exact=log["other"].tenant_id, **query
    )


def test_the_operator_filters_across_tenants(client, superuser, log):
    client.force_login(superuser)
    assert listed(client, MESSAGES, q="报销流程") == names(log, "late", "other")


@pytest.mark.parametrize(
    ("query", "chats"),
    [
        ({"from": "2026-03-02", "to": "2026-03-03"}, {("c2", "lisi"), ("c1", "zhangsan")}),
        ({"platform": "feishu"}, {("c2", "lisi")}),
        ({"user": "wangwu"}, {("c3", "wangwu")}),
        ({"chat": "c1"}, {("c1", "zhangsan")}),
    ],
)
def test_the_conversation_list_filters(client, auditor_a, log, query, chats):
    client.force_login(auditor_a)
    found = Conversation.objects.filter(pk__in=listed(client, CONVERSATIONS, **query))
    # c1 has two conversations: one is in the period (its last activity), one is not.
    assert {(c.chat_id, c.user_id) for c in found} == chats


def test_the_filters_draw_forms_that_keep_the_lists_other_parameters(client, auditor_a, log):
    client.force_login(auditor_a)
    page = client.get(MESSAGES, {"q": "报销", "user": "zhangsan"}).content.decode()
    assert '<input type="date" name="from" value="">' in page
    assert '<input type="text" name="user" value="zhangsan">' in page
    assert '<input type="hidden" name="q" value="报销">' in page


def test_a_date_that_is_no_date_shows_the_list_unfiltered(client, auditor_a, log):
    client.force_login(auditor_a)
    response = client.get(MESSAGES, {"from": "2026-02-30"})
    assert (response.status_code, response["Location"]) == (302, f"{MESSAGES}?e=1")


@pytest.mark.parametrize(
    ("admin_query", "api_query"),
    [
        ({"platform": "feishu"}, {"platform": "feishu"}),
        ({"user": "zhangsan"}, {"user": "zhangsan"}),
        ({"chat": "c1"}, {"chat": "c1"}),
        ({"status__exact": "answered"}, {"status": "answered"}),
        ({"q": "报销"}, {"q": "报销"}),
        (
            {"from": "2026-03-02", "to": "2026-03-03"},
            {"since": "2026-03-02T00:00:00+08:00", "until": "2026-03-04T00:00:00+08:00"},
        ),
    ],
)
def test_the_admin_and_the_api_select_the_same_rows(
    client, auditor_a, tenant_a, key_for, log, admin_query, api_query
):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(tenant_a, 'logs:read')}")
    results = api.get("/api/v1/messages/", api_query).json()["results"]
    client.force_login(auditor_a)
    assert listed(client, MESSAGES, **admin_query) == {int(row["id"]) for row in results}
