"""A month of conversation log that looks like a real one, for pages a person looks at."""

import random
from datetime import timedelta

from django.utils import timezone

from conversations import rollup
from conversations.models import Message
from tests.conversations.test_rollup import local
from tests.factories import ConversationFactory

SENDERS = ["zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi", "zhouba", "wujiu", "zhengshi"]
# Outcomes and how often they happen.
OUTCOMES = {"answered": 88, "failed": 4, "rate_limited": 3, "ignored": 5}


def fill(bots, days=30, per_day=24, seed=1):
    """Questions of `bots` over the last `days` days: quieter at weekends, one bad day,
    answer times with a long tail; then the rollup is refreshed. Returns the conversations."""
    rng = random.Random(seed)
    conversations = [ConversationFactory(bot=bot, chat_id=f"{bot.name}-chat") for bot in bots]
    rows = []
    for offset in range(days):
        day_start = local(-offset, 0)
        weekend = day_start.weekday() >= 5
        bad_day = offset == 9
        for _ in range(rng.randint(per_day // 3, per_day // 2) if weekend else per_day):
            conversation = rng.choice(conversations)
            status = rng.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
            if bad_day and rng.random() < 0.4:
                status = "failed"
            answered = status == "answered"
            first_token = int(rng.lognormvariate(6.3, 0.5)) if answered else None
            rows.append(
                Message(
                    tenant=conversation.tenant,
                    bot=conversation.bot,
                    conversation=conversation,
                    role="user",
                    content="How do I reset my VPN password?",
                    sender=rng.choice(SENDERS),
                    status=status,
                    error="model: connection refused" if status == "failed" else "",
                    total_ms=first_token + int(rng.lognormvariate(7.8, 0.6)) if answered else None,
                    first_token_ms=first_token,
                    prompt_tokens=rng.randint(40, 900) if answered else None,
                    completion_tokens=rng.randint(20, 500) if answered else None,
                )
            )
            asked = day_start + timedelta(minutes=rng.randint(8 * 60, 20 * 60))
            rows[-1].asked_at = min(asked, timezone.now())
    Message.objects.bulk_create(rows)
    for row in rows:  # created_at is set on insert; move each question to its day
        row.created_at = row.asked_at
    Message.objects.bulk_update(rows, ["created_at"], batch_size=500)
    rollup.refresh(days=days)
    return conversations
