"""Context building costs the same with a small and a huge conversation log.

Fills two scratch PostgreSQL databases with SMALL and LARGE messages (questions and
their answers) spread over many conversations, adds a long-running session to each, and
times `build_messages` for its new question, alternating between the two logs call by
call. The query reads one index range of bounded length, so the two medians should agree
within 20 %.

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

from bench.harness import bench_secrets, scratch_postgres  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()
    setup()

    from conversations.context import build_messages

    questions = {}
    for log, size in (("small", args.small), ("large", args.large)):
        Log.alias = log
        bot = make_bot()
        fill_log(size)
        # The measured session is the newest, as a live one is.
        questions[log] = seed_session(bot, log)
    small, large = interleaved_timings(build_messages, questions, args.repeat)
    ratio = large / small
    print(
        f"build_messages median: {small:.2f} ms with {args.small:,} rows, "
        f"{large:.2f} ms with {args.large:,} rows; ratio {ratio:.2f} "
        f"({'OK' if abs(ratio - 1) <= 0.2 else 'OVER'} the 20 % bound)"
    )
    sys.exit(0 if abs(ratio - 1) <= 0.2 else 1)


class Log:
    """A database router: every query goes to the log being filled or timed."""

    alias = "small"

    def db_for_read(self, model: type, **hints: object) -> str:
        return Log.alias

    db_for_write = db_for_read


def setup() -> None:
    bench_secrets()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL server (a scratch database is used)")
    names = {log: f"assistant_bench_context_{log}" for log in ("small", "large")}
    os.environ["DATABASE_URL"] = scratch_postgres(url, names["small"])  # "default" too
    scratch_postgres(url, names["large"])
    import django
    from django.conf import settings
    from django.core.management import call_command

    for log, name in names.items():
        settings.DATABASES[log] = {**settings.DATABASES["default"], "NAME": name}
    settings.DATABASE_ROUTERS = [f"{__name__}.Log"]
    django.setup()
    for log in names:
        call_command("migrate", database=log, verbosity=0)


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
    from django.db import connections

    from conversations.models import Message

    missing = total - Message.objects.count()
    if missing <= 0:
        return
    with connections[Log.alias].cursor() as cursor:
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


def interleaved_timings(build, questions: dict, repeat: int) -> tuple[float, float]:
    """Median milliseconds of `build` for the small and the large log, calls alternating
    between the two so that the machine's own drift (a third, on a small VM) falls on
    both alike."""
    from conversations.models import Message

    loaded = {}
    for log, question in questions.items():
        Log.alias = log
        loaded[log] = Message.objects.select_related("tenant", "bot").get(pk=question.pk)
        for _ in range(20):  # warm caches
            build(loaded[log])
    samples: dict[str, list[float]] = {log: [] for log in loaded}
    for _ in range(repeat):
        for log, question in loaded.items():
            Log.alias = log
            started = time.perf_counter()
            build(question)
            samples[log].append((time.perf_counter() - started) * 1000)
    return statistics.median(samples["small"]), statistics.median(samples["large"])


if __name__ == "__main__":
    main()
