"""Context building costs the same with a small and a huge conversation log.

Fills a scratch PostgreSQL database (or SQLite) with SMALL and then LARGE messages spread
over many conversations, and times `build_messages` for a question in a long-running
session at each size. The query reads one index range of bounded length, so the two
medians should agree within 20 %.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/context_build.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import scratch_postgres  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    setup()

    from conversations.context import build_messages

    bot = make_bot()
    # Each measured session is the newest, as a live one is, after the log was filled.
    fill_log(args.small)
    small = timings(build_messages, seed_session(bot, "small"), args.repeat)
    fill_log(args.large)
    large = timings(build_messages, seed_session(bot, "large"), args.repeat)
    ratio = large / small
    print(
        f"build_messages median: {small:.2f} ms with {args.small:,} rows, "
        f"{large:.2f} ms with {args.large:,} rows; ratio {ratio:.2f} "
        f"({'OK' if abs(ratio - 1) <= 0.2 else 'OVER'} the 20 % bound)"
    )
    sys.exit(0 if abs(ratio - 1) <= 0.2 else 1)


def setup() -> None:
    os.environ.setdefault("SECRET_KEY", "bench-only-secret")
    os.environ.setdefault("FIELD_ENCRYPTION_KEY", "YmVuY2gtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE=")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL server (a scratch database is used)")
    os.environ["DATABASE_URL"] = scratch_postgres(url, "assistant_bench_context")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def make_bot():  # noqa: ANN201 - a channels_im Bot
    from tests.factories import BotFactory, TenantFactory

    return BotFactory(tenant=TenantFactory(slug="ctx", context_max_rounds=10, num_ctx=8192))


def seed_session(bot, name: str):  # noqa: ANN001, ANN201 - a Bot in, a Message out
    """A session with 50 answered rounds, and a new question in it."""
    from django.utils import timezone

    from conversations.models import Conversation, Message

    tenant = bot.tenant
    conversation = Conversation.objects.create(
        tenant=tenant, bot=bot, chat_id=name, user_id=name, last_activity_at=timezone.now()
    )
    for n in range(50):
        question = Message.objects.create(
            tenant=tenant,
            bot=bot,
            conversation=conversation,
            role="user",
            sender="u",
            content=f"question {n} " * 20,
            external_id=f"{name}-q{n}",
            status="answered",
        )
        Message.objects.create(
            tenant=tenant,
            bot=bot,
            conversation=conversation,
            role="assistant",
            reply_to=question,
            content=f"answer {n} " * 40,
            status="answered",
        )
    return Message.objects.create(
        tenant=tenant,
        bot=bot,
        conversation=conversation,
        role="user",
        sender="u",
        content="the new question",
        external_id=f"{name}-new",
        status="queued",
    )


def fill_log(total: int) -> None:
    """Other conversations' questions and answers until the log holds `total` messages
    (fast, in SQL)."""
    from django.db import connection

    from conversations.models import Message

    missing = total - Message.objects.count()
    if missing <= 0:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH bot AS (SELECT id, tenant_id FROM channels_im_bot LIMIT 1),
            conv AS (
                INSERT INTO conversations_conversation
                    (tenant_id, bot_id, chat_id, user_id, started_at, last_activity_at)
                SELECT bot.tenant_id, bot.id, 'chat' || g, 'user' || g, now(), now()
                FROM bot, generate_series(1, %(conversations)s) AS g
                RETURNING id, tenant_id, bot_id
            )
            INSERT INTO conversations_message
                (tenant_id, bot_id, conversation_id, role, content, sender, external_id,
                 status, error, model, reply_context, created_at, attempts)
            SELECT conv.tenant_id, conv.bot_id, conv.id, 'user', 'filler question', 'user',
                   'fill-' || conv.id || '-' || n, 'answered', '', '', '{}', now(), 1
            FROM conv, generate_series(1, 10) AS n
            """,
            {"conversations": max(missing // 20, 1)},
        )
        cursor.execute(
            """
            INSERT INTO conversations_message
                (tenant_id, bot_id, conversation_id, reply_to_id, role, content, sender,
                 status, error, model, reply_context, created_at, attempts)
            SELECT q.tenant_id, q.bot_id, q.conversation_id, q.id, 'assistant',
                   'filler answer', '', 'answered', '', 'm', '{}', now(), 1
            FROM conversations_message q
            WHERE q.role = 'user' AND q.external_id LIKE 'fill-%%'
              AND NOT EXISTS (SELECT 1 FROM conversations_message r WHERE r.reply_to_id = q.id)
            """
        )
        cursor.execute("ANALYZE conversations_message")


def timings(build, question, repeat: int) -> float:
    from conversations.models import Message

    question = Message.objects.select_related("tenant", "bot").get(pk=question.pk)
    for _ in range(20):  # warm caches
        build(question)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        build(question)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


if __name__ == "__main__":
    main()
