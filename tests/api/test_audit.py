"""REST API calls in the audit trail: writes with their changed fields, log reads as
views, searches and exports, the API key as the actor."""

import pytest
from rest_framework.test import APIClient

from tenants.audit_models import AuditEvent
from tenants.models import ApiKey
from tests.api.conftest import read_stream
from tests.factories import WECOM_CREDENTIALS, BotFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action


@pytest.fixture
def key(api):
    return ApiKey.objects.get()


@pytest.fixture
def question(tenant_a):
    """A question asked in WeCom, answered."""
    conversation = ConversationFactory(bot=BotFactory(tenant=tenant_a, name="wecom"))
    return MessageFactory(conversation=conversation, content="VPN 连不上")


def only(**lookups) -> AuditEvent:
    events = list(AuditEvent.objects.filter(**lookups))
    assert len(events) == 1, events
    return events[0]


def assert_by_key(event: AuditEvent, key: ApiKey, tenant) -> None:
    assert (event.actor_key_id, event.actor_user_id) == (key.pk, None)
    assert event.actor_label == f"API key {key.name} ({key.prefix}…)"
    assert (event.tenant_id, event.ip) == (tenant.pk, "127.0.0.1")


def test_a_settings_change_is_recorded_with_the_key_as_actor(api, key, tenant_a):
    old = tenant_a.context_max_rounds
    assert api.patch("/api/v1/tenant/", {"context_max_rounds": 3}, format="json").status_code == 200
    event = only(action=Action.CHANGE)
    assert_by_key(event, key, tenant_a)
    assert event.changes == {"context_max_rounds": {"old": old, "new": 3}}


def test_a_refused_change_and_a_read_of_settings_record_nothing(api, tenant_a):
    assert api.get("/api/v1/tenant/").status_code == 200
    assert api.patch("/api/v1/tenant/", {"num_ctx": 1}, format="json").status_code == 400
    assert not AuditEvent.objects.exists()


def test_a_bots_life_is_recorded_without_its_secrets(api, key, tenant_a):
    body = {"name": "helpdesk", "platform": "wecom", "credentials": WECOM_CREDENTIALS}
    public_id = api.post("/api/v1/bots/", body, format="json").json()["public_id"]
    path = f"/api/v1/bots/{public_id}/"
    api.patch(path, {"credentials": {"secret": "rotated-secret-0001"}}, format="json")
    api.delete(path)
    created, changed, deleted = AuditEvent.objects.order_by("id")
    assert (created.action, changed.action, deleted.action) == (
        Action.CREATE,
        Action.CHANGE,
        Action.DELETE,
    )
    assert {f"credentials.{name}" for name in WECOM_CREDENTIALS} <= set(created.changes)
    assert changed.changes == {"credentials.secret": "changed"}
    assert deleted.object_label == "helpdesk"
    for event in (created, changed, deleted):
        assert_by_key(event, key, tenant_a)
        assert "rotated-secret-0001" not in repr(event.changes)
        assert WECOM_CREDENTIALS["secret"] not in repr(event.changes)


def test_listing_and_opening_conversations_are_a_search_and_a_view(api, key, tenant_a, question):
    listed = api.get("/api/v1/conversations/", {"user": "zhangsan"}).json()
    search = only(action=Action.SEARCH)
    assert_by_key(search, key, tenant_a)
    assert (search.object_type, search.detail) == (
        "conversations.conversation",
        {"query": {"user": "zhangsan"}},
    )
    api.get(f"/api/v1/conversations/{listed['results'][0]['id']}/")
    view = only(action=Action.VIEW)
    assert (view.object_type, view.object_id) == (
        "conversations.conversation",
        str(question.conversation_id),
    )


def test_a_message_search_keeps_its_query_but_not_the_page_cursor(api, question):
    first = api.get("/api/v1/messages/", {"q": "vpn", "page_size": 1}).json()
    api.get(first["next"] or "/api/v1/messages/?q=vpn&page_size=1&cursor=cD0x")
    searches = AuditEvent.objects.filter(action=Action.SEARCH)
    assert [e.detail for e in searches] == [{"query": {"q": "vpn", "page_size": "1"}}] * 2


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_an_export_records_its_filter_and_row_count(api, key, tenant_a, question, kind):
    MessageFactory(conversation=question.conversation, content="打印机在哪")
    response = api.get("/api/v1/messages/export/", {"format": kind, "q": "vpn"})
    event = only(action=Action.EXPORT)  # before a byte of the file is read
    assert_by_key(event, key, tenant_a)
    assert event.detail == {"query": {"format": kind, "q": "vpn"}, "rows": 1}
    assert "VPN" in b"".join(response.streaming_content).decode()


def test_reading_a_logged_message_is_a_view_and_polling_an_api_answer_is_not(api, question):
    assert api.get(f"/api/v1/messages/{question.pk}/").status_code == 200
    view = only(action=Action.VIEW)
    assert (view.object_type, view.object_id) == ("conversations.message", str(question.pk))
    api_bot = BotFactory(tenant=question.tenant, platform="api", credentials={})
    sent = MessageFactory(conversation=ConversationFactory(bot=api_bot), status="answered")
    assert api.get(f"/api/v1/messages/{sent.pk}/").status_code == 200
    stream = api.get(f"/api/v1/messages/{sent.pk}/stream/")
    assert "event: done" in read_stream(stream)
    assert AuditEvent.objects.count() == 1


def test_another_tenants_rows_are_404_and_record_nothing(key_for, tenant_b, question):
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(tenant_b, *ApiKey.SCOPES)}")
    assert other.get(f"/api/v1/messages/{question.pk}/").status_code == 404
    assert other.get(f"/api/v1/conversations/{question.conversation_id}/").status_code == 404
    assert not AuditEvent.objects.exists()
