"""Reading the log, usage, and administering the tenant and its bots over the API."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from channels_im.models import Bot
from conversations.models import Message
from tests.factories import WECOM_CREDENTIALS, BotFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def log(tenant_a):
    """Two conversations on two bots: three questions, two answered."""
    wecom = BotFactory(tenant=tenant_a, name="wecom", platform="wecom")
    feishu = BotFactory(tenant=tenant_a, name="feishu", platform="wecom")
    rows = []
    for bot, user, text, status, total in [
        (wecom, "zhangsan", "VPN 连不上", "answered", 1200),
        (wecom, "zhangsan", "打印机在哪", "answered", 800),
        (feishu, "lisi", "报销流程", "failed", None),
    ]:
        conversation = ConversationFactory(tenant=tenant_a, bot=bot, user_id=user, chat_id=user)
        question = MessageFactory(
            tenant=tenant_a, bot=bot, conversation=conversation, sender=user, content=text,
            status=status, total_ms=total, prompt_tokens=10, completion_tokens=20,
        )  # fmt: skip
        if status == "answered":
            MessageFactory(
                tenant=tenant_a, bot=bot, conversation=conversation, role="assistant",
                reply_to=question, content=f"answer to {text}", external_id=None,
            )  # fmt: skip
        rows.append(question)
    return {"wecom": wecom, "feishu": feishu, "questions": rows}


def test_messages_are_filtered_and_paged_newest_first_without_counting(api, log):
    page = api.get("/api/v1/messages/", {"role": "user", "page_size": 2}).json()
    assert [m["text"] for m in page["results"]] == ["报销流程", "打印机在哪"]
    assert "count" not in page and page["next"]
    rest = api.get(page["next"]).json()
    assert [m["text"] for m in rest["results"]] == ["VPN 连不上"] and rest["next"] is None
    found = api.get("/api/v1/messages/", {"q": "vpn", "status": "answered", "role": "user"}).json()
    assert [m["text"] for m in found["results"]] == ["VPN 连不上"]
    assert found["results"][0]["answer"]["text"] == "answer to VPN 连不上"
    by_bot = api.get("/api/v1/messages/", {"bot": str(log["feishu"].public_id)}).json()
    assert [m["text"] for m in by_bot["results"]] == ["报销流程"]


def test_a_bad_filter_is_a_400_naming_it(api, log):
    response = api.get("/api/v1/messages/", {"since": "yesterday", "status": "lost"})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"since", "status"}


def test_conversations_list_and_show_their_transcript(api, log):
    listed = api.get("/api/v1/conversations/", {"user": "zhangsan"}).json()["results"]
    assert [c["message_count"] for c in listed] == [2, 2]
    detail = api.get(f"/api/v1/conversations/{listed[0]['id']}/").json()
    assert [(m["role"], m["text"]) for m in detail["messages"]] == [
        ("user", "打印机在哪"),
        ("assistant", "answer to 打印机在哪"),
    ]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_the_export_streams_what_is_filtered(api, log, kind):
    response = api.get("/api/v1/messages/export/", {"format": kind, "role": "user"})
    assert response.status_code == 200 and response.streaming
    body = b"".join(response.streaming_content).decode()
    if kind == "csv":
        assert body.startswith("\ufeff") and body.count("\n") == 4  # header and 3 rows
        assert "VPN 连不上" in body
    else:
        rows = [json.loads(line) for line in body.splitlines()]
        assert [row["content"] for row in rows] == ["报销流程", "打印机在哪", "VPN 连不上"]


def test_usage_counts_outcomes_tokens_and_times(api, log):
    results = api.get("/api/v1/usage/", {"group_by": "user"}).json()["results"]
    assert results == [
        {"key": "lisi", "messages": 1, "answered": 0, "failed": 1, "rate_limited": 0,
         "quota_exceeded": 0, "prompt_tokens": 10, "completion_tokens": 20,
         "p50_total_ms": None, "p95_total_ms": None},
        {"key": "zhangsan", "messages": 2, "answered": 2, "failed": 0, "rate_limited": 0,
         "quota_exceeded": 0, "prompt_tokens": 20, "completion_tokens": 40,
         "p50_total_ms": 1000, "p95_total_ms": 1180},
    ]  # fmt: skip
    later = timezone.now() + timedelta(days=1)
    assert api.get("/api/v1/usage/", {"since": later.isoformat()}).json()["results"] == []


def test_the_tenant_reads_and_changes_its_settings_with_the_admins_checks(api, tenant_a):
    assert api.get("/api/v1/tenant/").json()["slug"] == tenant_a.slug
    changed = api.patch("/api/v1/tenant/", {"context_max_rounds": 3, "slug": "x"}, format="json")
    assert changed.status_code == 200 and changed.json()["context_max_rounds"] == 3
    slug = tenant_a.slug
    tenant_a.refresh_from_db()
    assert (tenant_a.context_max_rounds, tenant_a.slug) == (3, slug)  # slug is read-only
    refused = api.patch(
        "/api/v1/tenant/",
        {"num_ctx": 2**31 - 1, "model_endpoint": "http://10.0.0.5/x?y="},
        format="json",
    )
    assert refused.status_code == 400
    assert {"num_ctx", "model_endpoint"} <= set(refused.json()["errors"])


def test_bots_show_credentials_masked_and_keep_what_a_patch_leaves_out(api, tenant_a):
    created = api.post(
        "/api/v1/bots/",
        {"name": "helpdesk", "platform": "wecom", "credentials": WECOM_CREDENTIALS},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body["credentials"]["secret"].startswith("••••••")
    assert WECOM_CREDENTIALS["secret"] not in json.dumps(body)
    assert body["credentials"]["corp_id"].startswith("••••••")  # identifiers too
    path = f"/api/v1/bots/{body['public_id']}/"
    assert (
        api.patch(
            path, {"credentials": {"secret": "rotated-secret-0001"}}, format="json"
        ).status_code
        == 200
    )
    bot = Bot.objects.get(public_id=body["public_id"])
    assert bot.credentials == {**WECOM_CREDENTIALS, "secret": "rotated-secret-0001"}
    assert api.delete(path).status_code == 204 and not Bot.objects.filter(pk=bot.pk).exists()


def test_a_bot_without_its_platforms_credentials_is_a_400_naming_them(api):
    response = api.post("/api/v1/bots/", {"name": "x", "platform": "feishu"}, format="json")
    assert response.status_code == 400
    assert "credentials.app_secret" in response.json()["errors"]


def test_over_the_keys_rate_it_is_429_with_retry_after(api, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 2
    codes = [api.get("/api/v1/tenant/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = api.get("/api/v1/tenant/")
    assert int(refused["Retry-After"]) > 0 and refused.json()["code"] == "throttled"


def test_a_signed_in_auditor_reads_the_log_from_the_docs_page_but_cannot_send(auditor_a, log):
    client = APIClient()
    client.force_login(auditor_a)
    assert client.get("/api/v1/messages/").status_code == 200
    assert (
        client.post("/api/v1/messages/", {"user": "u", "text": "hi"}, format="json").status_code
        == 403
    )


def test_the_database_down_is_a_503(api, monkeypatch):
    from django.db import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("the database is restarting")

    monkeypatch.setattr(Message.objects, "filter", down)
    response = api.get("/api/v1/messages/")
    assert response.status_code == 503 and response.json()["code"] == "unavailable"


def test_a_chat_key_reads_only_what_was_sent_through_the_api(log, tenant_a, key_for):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(tenant_a, 'chat')}")
    chat_message = log["questions"][0]
    assert client.get(f"/api/v1/messages/{chat_message.pk}/").status_code == 404
    assert client.get(f"/api/v1/messages/{chat_message.pk}/stream/").status_code == 404


def test_a_forged_cursor_is_a_404_not_a_500(api, log):
    import base64

    cursor = base64.b64encode(b"p=abc&r=0").decode()
    response = api.get("/api/v1/messages/", {"cursor": cursor})
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_the_api_bot_is_made_by_the_api_alone(api):
    response = api.post("/api/v1/bots/", {"name": "second", "platform": "api"}, format="json")
    assert response.status_code == 400 and "platform" in response.json()["errors"]


def test_identifiers_are_masked_too(api):
    created = api.post(
        "/api/v1/bots/",
        {"name": "helpdesk", "platform": "wecom", "credentials": WECOM_CREDENTIALS},
        format="json",
    ).json()
    assert all(value.startswith("••••••") for value in created["credentials"].values())
