"""The dispatcher's rate: how many questions a second the one elected dispatcher
(conversations/dispatch.py) turns into tasks on the broker. It is the one step every
question of an installation goes through in a single thread, however many web and worker
processes there are, so it bounds the whole installation's rate (PostgreSQL only).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/13 CACHE_URL=redis://127.0.0.1:6379/12 \\
    python bench/dispatch_rate.py -n 3000

The product runs as in production, but its worker stops taking questions from the
broker (Celery's cancel_consumer), so its dispatcher is all its main process does. N
questions are stored in one transaction, whose commit announces them all at once; the
rate is N over the time from that commit until the broker holds N tasks. The worker then
takes questions again and answers them. The dispatcher must publish --target a second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kombu.exceptions import ChannelError  # noqa: E402

from bench.harness import Product  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=3000, help="questions announced at once")
    parser.add_argument("--target", type=float, default=400.0, help="tasks a second")
    args = parser.parse_args()

    with Product(first_token_delay=0.0) as product:
        from django.db import connection, transaction

        from assistant.celery import app
        from channels_im.platforms.base import InboundMessage
        from conversations.dispatch import by_notify
        from conversations.services import store

        if connection.vendor != "postgresql" or not by_notify():
            sys.exit("the dispatcher runs on PostgreSQL with IM_DISPATCH=notify (the default)")
        bot = product.make_bot("wecom")
        with product.questions_held():
            stamp = time.time_ns()
            with transaction.atomic():
                for n in range(args.n):
                    inbound = InboundMessage(f"rate-{stamp}-{n}", f"user{n}", f"user{n}", f"q{n}")
                    store(bot, inbound, "queued")
            committed = time.monotonic()
            published = wait_for_tasks(app, args.n, committed)

    rate = args.n / (published - committed)
    met = rate >= args.target
    print(
        f"dispatcher: {args.n} questions published in {published - committed:.2f} s: "
        f"{rate:.0f}/s (target >= {args.target:.0f}/s) {'OK' if met else 'MISSED'}"
    )
    sys.exit(0 if met else 1)


def wait_for_tasks(app, count: int, since: float, timeout: float = 300.0) -> float:  # noqa: ANN001
    """When the broker's queue first held `count` tasks."""
    from django.conf import settings

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    with app.connection_for_read() as broker:
        channel = broker.default_channel
        while time.monotonic() - since < timeout:
            try:
                held = channel.queue_declare(queue, passive=True).message_count
            except ChannelError:  # Redis: no list until the first task is pushed
                held = 0
            if held >= count:
                return time.monotonic()
            time.sleep(0.01)
    raise TimeoutError(f"the broker did not hold {count} tasks within {timeout:.0f} s")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
    main()
