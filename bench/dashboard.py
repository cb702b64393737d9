"""The admin's home page with a large log: under 300 ms with 1,000,000 messages.

Fills a scratch PostgreSQL database with MESSAGES questions over the last 30 days (many
tenants, bots and people, every outcome, answer times with a long tail) in SQL, builds
the dashboard's rollup as the beat does (timing the full month once and the beat's
two-day refresh), then renders the admin's home page through Django's test client, signed
in as the operator (every tenant) and as a tenant admin (one), and prints percentiles.
Exits non-zero when a p95 reaches 300 ms.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/dashboard.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import bench_secrets, percentile, scratch_postgres, summary  # noqa: E402

TARGET_MS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--bots-per-tenant", type=int, default=3)
    parser.add_argument("--people", type=int, default=5_000, help="distinct senders")
    parser.add_argument("--requests", type=int, default=50, help="timed page loads per role")
    args = parser.parse_args()
    setup()

    tenants = make_tenants(args.tenants, args.bots_per_tenant)
    started = time.perf_counter()
    fill_log(args.messages, args.people)
    print(f"filled {args.messages:,} messages in {time.perf_counter() - started:.1f} s")
    build_rollup()

    operator, tenant_admin = make_users(tenants[0])
    over = False
    for label, user in (("operator", operator), ("tenant admin", tenant_admin)):
        timings = render_home(user, args.requests)
        print(summary(f"home page as {label}:", timings))
        over |= percentile(timings, 95) >= TARGET_MS
    print(f"target: p95 under {TARGET_MS} ms: {'MISSED' if over else 'met'}")
    sys.exit(1 if over else 0)


def setup() -> None:
    bench_secrets()
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("CACHE_URL", "locmem://")
    os.environ["LOG_LEVEL"] = "WARNING"
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL server (a scratch database is used)")
    os.environ["DATABASE_URL"] = scratch_postgres(url, "assistant_bench_dashboard")
    import django
    from django.conf import settings

    # WhiteNoise looks for collectstatic's folder, which the bench does not need.
    warnings.filterwarnings("ignore", "No directory at")
    from django.core.management import call_command

    django.setup()
    # Production's manifest storage needs collectstatic; the page's cost is the same.
    settings.STORAGES["staticfiles"] = {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
    }
    call_command("migrate", verbosity=0)


def make_tenants(count: int, bots_per_tenant: int) -> list:
    from tests.factories import BotFactory, TenantFactory

    tenants = [TenantFactory(slug=f"bench-{n}", name=f"Bench {n}") for n in range(count)]
    for tenant in tenants:
        for n in range(bots_per_tenant):
            BotFactory(tenant=tenant, name=f"{tenant.slug}-bot-{n}")
    return tenants


def fill_log(total: int, people: int) -> None:
    """`total` questions, ten conversations per bot, in one INSERT … SELECT: 88 % answered,
    the rest failed, rate limited, ignored or still queued; times and tokens random."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO conversations_conversation
                (tenant_id, bot_id, chat_id, user_id, started_at, last_activity_at)
            SELECT bot.tenant_id, bot.id, 'chat-' || bot.id || '-' || n, '', now(), now()
            FROM channels_im_bot bot, generate_series(1, 10) AS n
            """
        )
        cursor.execute(
            """
            WITH conv AS (
                SELECT id, tenant_id, bot_id, row_number() OVER (ORDER BY id) - 1 AS n,
                       count(*) OVER () AS total
                FROM conversations_conversation
            ),
            q AS (
                SELECT g, random() AS r, random() AS t, random() AS u
                FROM generate_series(1, %(total)s) AS g
            )
            INSERT INTO conversations_message
                (tenant_id, bot_id, conversation_id, role, content, sender, external_id,
                 status, error, model, done_reason, reply_context, created_at, attempts,
                 first_token_ms, total_ms, prompt_tokens, completion_tokens, tokens_estimated)
            SELECT conv.tenant_id, conv.bot_id, conv.id, 'user', 'a question', 'person-'
                       || (q.g %% %(people)s), 'bench-' || q.g,
                   CASE WHEN q.r < 0.88 THEN 'answered' WHEN q.r < 0.93 THEN 'failed'
                        WHEN q.r < 0.96 THEN 'rate_limited' WHEN q.r < 0.995 THEN 'ignored'
                        ELSE 'queued' END,
                   '', 'qwen2:1.5b', '', '{}', now() - q.u * interval '30 days', 1,
                   CASE WHEN q.r < 0.93 THEN (150 + 8000 * q.t ^ 3)::int END,
                   CASE WHEN q.r < 0.93 THEN (900 + 60000 * q.t ^ 4)::int END,
                   CASE WHEN q.r < 0.93 THEN (50 + 1500 * q.t)::int END,
                   CASE WHEN q.r < 0.88 THEN (20 + 600 * q.u)::int END,
                   false
            FROM q JOIN conv ON conv.n = q.g %% conv.total
            """,
            {"total": total, "people": people},
        )
        cursor.execute("ANALYZE")


def build_rollup() -> None:
    from django.db import connection

    from conversations import rollup

    for days, label in ((31, "the whole month"), (rollup.RECENT_DAYS, "the beat's refresh")):
        started = time.perf_counter()
        rows = rollup.refresh(days)
        elapsed = time.perf_counter() - started
        print(f"rollup of {label} ({days} days): {rows:,} rows in {elapsed:.2f} s")
    with connection.cursor() as cursor:  # as autovacuum would, soon after
        cursor.execute("ANALYZE conversations_botday, conversations_userday")


def make_users(tenant) -> tuple:  # noqa: ANN001 - a Tenant in, two Users out
    from tests.factories import MembershipFactory, UserFactory

    operator = UserFactory(username="bench-operator", is_superuser=True)
    tenant_admin = MembershipFactory(user__username="bench-admin", tenant=tenant).user
    return operator, tenant_admin


def render_home(user, requests: int) -> list[float]:  # noqa: ANN001 - a User
    """Milliseconds per GET /admin/ (response rendered), after a few to warm up."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    for _ in range(3):
        response = client.get("/admin/")
        if response.status_code != 200 or b"dash-svg" not in response.content:
            raise SystemExit(f"the home page did not draw the dashboard: {response.status_code}")
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get("/admin/")
        timings.append((time.perf_counter() - started) * 1000)
    return timings


if __name__ == "__main__":
    main()
