"""On PostgreSQL, a purge of many rows holds up no other writer of the tenant for long:
each batch is a short transaction that locks only its own rows."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from conversations import retention
from conversations.models import Conversation, Message
from tenants.audit import Actor
from tests.conversations.test_retention import retain
from tests.factories import BotFactory, ConversationFactory, MessageFactory, TenantFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's locks"),
]

ROWS, BATCH = 20_000, 500


def old_log(bot, rows):
    """`rows` answered questions of `bot`, ten days old, in a few conversations."""
    conversations = [ConversationFactory(bot=bot) for _ in range(20)]
    created = timezone.now() - timedelta(days=10)
    Message.objects.bulk_create(
        Message(
            tenant=bot.tenant,
            bot=bot,
            conversation=conversations[n % len(conversations)],
            role=Message.Role.USER,
            content=f"question {n}",
            sender=f"user-{n % 50}",
            external_id=f"old-{n}",
            status=Message.Status.ANSWERED,
            prompt_tokens=10,
            completion_tokens=20,
        )
        for n in range(rows)
    )
    Message.objects.filter(bot=bot).update(created_at=created)
    return conversations


def test_a_writer_of_the_same_tenant_is_never_held_up_by_a_large_purge():
    tenant = retain(TenantFactory(slug="busy"))
    bot = BotFactory(tenant=tenant, name="busy-bot")
    conversations = old_log(bot, ROWS)
    old_ids = list(Message.objects.order_by("-id").values_list("pk", flat=True)[:2000])
    done, result = threading.Event(), {}

    def purge():
        try:
            result["run"] = retention.purge(tenant, actor=Actor.system("test"), batch_size=BATCH)
        finally:
            done.set()
            connections.close_all()

    purging = threading.Thread(target=purge)
    # Wait until the first batch is in: then every write below meets a running purge.
    purging.start()
    while not Message.objects.filter(redacted_at__isnull=False).exists():
        assert purging.is_alive(), "the purge ended before its first batch was seen"
        time.sleep(0.005)
    waits = []
    while not done.is_set():
        started = time.monotonic()
        MessageFactory(conversation=conversations[0], content="a new question")
        # A row the purge has yet to reach, or is on: the batch holding it must finish.
        Message.objects.filter(pk=old_ids[len(waits) % len(old_ids)]).update(attempts=2)
        waits.append(time.monotonic() - started)
    purging.join()
    assert result["run"].messages == ROWS
    assert len(waits) >= 5, "too few writes met the running purge to tell"
    assert max(waits) < 0.5, f"a writer waited {max(waits):.3f} s"
    assert Message.objects.filter(redacted_at__isnull=True, content="a new question").count() == (
        len(waits)
    )


def test_the_purge_reads_the_retention_index_and_skips_what_is_redacted():
    tenant = retain(TenantFactory(slug="indexed"))
    bot = BotFactory(tenant=tenant, name="indexed-bot")
    old_log(bot, 5_000)
    retention.purge(tenant, actor=Actor.system("test"), batch_size=BATCH)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Message._meta.db_table}")
    batch = (
        retention.expired(tenant, timezone.now())
        .order_by("created_at")
        .values_list("pk", "conversation_id")[:BATCH]
    )
    plan = batch.explain(analyze=True)
    assert "msg_retention_idx" in plan, plan
    # The next night's scan passes over none of the 5,000 redacted rows.
    assert "Rows Removed by Filter" not in plan or "Rows Removed by Filter: 0" in plan, plan
    assert Conversation.objects.filter(tenant=tenant).count() == 20
