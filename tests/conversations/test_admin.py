"""The conversation-log admin: read-only, tenant-scoped, exportable, cheap on big tables."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations.admin import CappedCountPaginator, MessageAdmin
from conversations.models import Message
from tests.factories import BotFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

MESSAGES = reverse("admin:conversations_message_changelist")
CONVERSATIONS = reverse("admin:conversations_conversation_changelist")
EXPORT_CSV = reverse("admin:conversations_message_export_csv")


@pytest.fixture
def conversation(tenant_a):
    return ConversationFactory(bot=BotFactory(tenant=tenant_a, name="helpdesk"))


@pytest.fixture
def question(conversation):
    return MessageFactory(conversation=conversation, content="报销流程是什么？", sender="zhangsan")


def message_url(message, view="change"):
    return reverse(f"admin:conversations_message_{view}", args=[message.pk])


def export(client, **filters):
    # English headers, whatever the installation's default language.
    response = client.get(EXPORT_CSV, filters, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return b"".join(response.streaming_content)


def test_it_lists_messages_for_auditors(client, auditor_a, question):
    client.force_login(auditor_a)
    response = client.get(MESSAGES)
    assert response.status_code == 200
    page = response.content.decode()
    assert "报销流程是什么？" in page and "helpdesk" in page
    assert client.get(message_url(question)).status_code == 200


def test_it_is_read_only_for_everyone(client, admin_a, superuser, question):
    client.force_login(admin_a)
    assert client.post(message_url(question), {"content": "rewritten"}).status_code == 403
    assert client.get(reverse("admin:conversations_message_add")).status_code == 403
    assert client.get(message_url(question, "delete")).status_code == 403

    client.force_login(superuser)
    assert client.post(message_url(question), {"content": "rewritten"}).status_code == 403
    assert client.get(message_url(question, "delete")).status_code == 200
    question.refresh_from_db()
    assert question.content == "报销流程是什么？"


def test_it_exports_the_searched_list_as_csv_with_a_bom(client, auditor_a, question, conversation):
    other = MessageFactory(conversation=conversation, content="unsearched row")
    client.force_login(auditor_a)
    body = export(client, q="报销")
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) == 2
    header, row = rows
    assert row[header.index("content")] == "报销流程是什么？"
    assert row[header.index("sender")] == "zhangsan"
    assert other.content not in body.decode()


def test_it_defuses_spreadsheet_formulas_in_the_export(client, admin_a, conversation):
    MessageFactory(conversation=conversation, content='=HYPERLINK("http://x")')
    client.force_login(admin_a)
    body = export(client, q="HYPERLINK").decode("utf-8-sig")
    assert "'=HYPERLINK" in body


def test_it_never_counts_the_whole_message_table(client, auditor_a, conversation):
    MessageFactory.create_batch(3, conversation=conversation)
    client.force_login(auditor_a)
    assert MessageAdmin.paginator is CappedCountPaginator
    with CaptureQueriesContext(connection) as queries:
        assert client.get(MESSAGES).status_code == 200
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the paginator should still count, within its cap"
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_it_renders_the_message_list_in_few_queries(
    client, auditor_a, conversation, django_assert_max_num_queries
):
    MessageFactory.create_batch(20, conversation=conversation)
    client.force_login(auditor_a)
    # Constant in the number of rows: list_select_related joins tenant and bot.
    with django_assert_max_num_queries(12):
        assert client.get(MESSAGES).status_code == 200


def test_it_lists_conversations_with_a_link_to_their_messages(client, auditor_a, question):
    client.force_login(auditor_a)
    response = client.get(CONVERSATIONS)
    assert response.status_code == 200
    assert f"conversation__id__exact={question.conversation_id}" in response.content.decode()
    filtered = client.get(MESSAGES, {"conversation__id__exact": question.conversation_id})
    assert "报销流程是什么？" in filtered.content.decode()


def test_it_offers_auditors_the_export_but_not_deletion(client, auditor_a, question):
    client.force_login(auditor_a)
    response = client.get(MESSAGES, {"status__exact": "answered"})
    page = response.content.decode()
    assert f'href="{EXPORT_CSV}?status__exact=answered"' in page
    assert response.context["action_form"] is None  # no actions: nothing to delete
    assert Message.objects.filter(pk=question.pk).exists()
