"""On PostgreSQL the log's text search is served by the trigram index of migration 0008,
for the very query the admin's search and the API's `q` build."""

import pytest
from django.db import connection
from django.urls import reverse

from conversations.models import Message
from tests.factories import BotFactory, ConversationFactory, MessageFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL index"),
]

INDEX = "msg_content_trgm_idx"


def test_the_migration_built_a_trigram_index_on_the_upper_cased_text():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [INDEX])
        (definition,) = cursor.fetchone()
    assert "USING gin (upper(content) gin_trgm_ops)" in definition


@pytest.mark.parametrize(("text", "words"), [("报销流程", 1), ("vpn 连不上", 2), ("VPN", 1)])
def test_the_admins_search_is_a_query_the_index_serves(client, auditor_a, tenant_a, text, words):
    conversation = ConversationFactory(bot=BotFactory(tenant=tenant_a))
    MessageFactory.create_batch(5, conversation=conversation, content="差旅报销流程 VPN 连不上")
    Message.objects.bulk_create(
        MessageFactory.build(conversation=conversation, content=f"打印机在哪 {n}")
        for n in range(2000)
    )
    client.force_login(auditor_a)
    searched = client.get(reverse("admin:conversations_message_changelist"), {"q": text})
    rows = searched.context["cl"].queryset
    assert rows.count() == 5
    # Each word of the search is Django's icontains on the text, as below.
    assert str(rows.query).count('UPPER("conversations_message"."content"::text) LIKE') == words
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE conversations_message")
        # A few thousand rows are cheaper read whole; the question is whether it can serve.
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = Message.objects.filter(content__icontains=text.split()[-1]).order_by().explain()
    assert f"Bitmap Index Scan on {INDEX}" in plan, plan
