"""Looks at the conversation log in the admin are recorded: opening a row is a view, a
searched or filtered list a search, an export an export with its filter and row count."""

import pytest
from django.urls import reverse

from tenants.audit_models import AuditEvent
from tests.factories import BotFactory, ConversationFactory, MembershipFactory, MessageFactory

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
MESSAGES = reverse("admin:conversations_message_changelist")


@pytest.fixture
def questions(tenant_a):
    conversation = ConversationFactory(bot=BotFactory(tenant=tenant_a, name="helpdesk"))
    return [
        MessageFactory(conversation=conversation, content=text) for text in ("VPN 连不上", "报销")
    ]


def looks():
    return AuditEvent.objects.exclude(action=Action.SIGN_IN).order_by("id")


def test_opening_a_message_or_a_conversation_is_a_view(client, auditor_a, tenant_a, questions):
    client.force_login(auditor_a)
    message = questions[0]
    conversation = message.conversation
    assert (
        client.get(reverse("admin:conversations_message_change", args=[message.pk])).status_code
        == 200
    )
    url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
    assert client.get(url, REMOTE_ADDR="198.51.100.4").status_code == 200
    first, second = looks()
    assert (first.action, first.object_type, first.object_id) == (
        Action.VIEW,
        "conversations.message",
        str(message.pk),
    )
    assert (second.object_type, second.object_id, second.ip) == (
        "conversations.conversation",
        str(conversation.pk),
        "198.51.100.4",
    )
    assert {(e.actor_label, e.tenant_id) for e in (first, second)} == {("audrey", tenant_a.pk)}


def test_the_operators_look_goes_to_the_tenants_chain(client, superuser, tenant_a, questions):
    client.force_login(superuser)
    client.get(reverse("admin:conversations_message_change", args=[questions[0].pk]))
    assert [(e.action, e.tenant_id, e.actor_label) for e in looks()] == [
        (Action.VIEW, tenant_a.pk, "root")
    ]


def test_a_plain_list_is_no_search_but_a_searched_or_filtered_one_is(client, auditor_a, questions):
    client.force_login(auditor_a)
    client.get(MESSAGES)
    client.get(MESSAGES, {"p": "0", "o": "1"})
    assert not looks().exists()
    client.get(MESSAGES, {"q": "VPN", "status__exact": "answered", "o": "1"})
    client.get(MESSAGES, {"from": "2026-01-01", "to": "", "user": "zhangsan"})
    searched, filtered = looks()
    assert (searched.action, searched.object_type) == (Action.SEARCH, "conversations.message")
    assert searched.detail == {"query": "VPN", "filters": {"status__exact": "answered"}}
    # The form's blank "to" narrowed nothing.
    assert filtered.detail == {"query": "", "filters": {"from": "2026-01-01", "user": "zhangsan"}}


def test_a_search_of_several_tenants_goes_to_each(client, auditor_a, tenant_b, questions):
    MembershipFactory(user=auditor_a, tenant=tenant_b, role="auditor")
    client.force_login(auditor_a)
    client.get(MESSAGES, {"q": "报销"})
    assert [e.tenant_slug for e in looks()] == ["tenant-a", "tenant-b"]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_an_export_records_its_filter_and_row_count(client, auditor_a, tenant_a, questions, kind):
    client.force_login(auditor_a)
    url = reverse(f"admin:conversations_message_export_{kind}")
    response = client.get(url, {"q": "VPN", "status__exact": "answered", "o": "1"})
    assert response.status_code == 200
    event = looks().get()
    assert (event.action, event.tenant_id, event.actor_label, event.object_type) == (
        Action.EXPORT,
        tenant_a.pk,
        "audrey",
        "conversations.message",
    )
    assert event.detail == {
        "query": "VPN",
        "filters": {"status__exact": "answered"},
        "format": kind,
        "rows": 1,
    }
    body = b"".join(response.streaming_content).decode()
    assert "VPN 连不上" in body and "报销" not in body


def test_an_outsider_sees_nothing_and_records_no_look(client, outsider, questions):
    client.force_login(outsider)
    url = reverse("admin:conversations_message_change", args=[questions[0].pk])
    assert client.get(url).status_code == 302
    assert not looks().filter(action=Action.VIEW).exists()
