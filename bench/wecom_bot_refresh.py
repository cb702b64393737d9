"""WeCom smart robot: how fast a stream-refresh callback is answered while the worker streams.

Starts the product (gunicorn + Celery worker) with a fake model that types slowly, asks
QUESTIONS questions at once, then keeps polling their streams the way WeCom does, and
prints the refresh response-time percentiles (target: p99 under 10 ms) and how many of
the polls saw a partial answer (proof they were made while the worker was streaming).

    CACHE_URL=redis://127.0.0.1:6379/12 CELERY_BROKER_URL=redis://127.0.0.1:6379/13 \\
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/wecom_bot_refresh.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Product, percentile, summary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # As many as the worker answers at once (WORKER_CONCURRENCY), so every poll is of a
    # stream being typed.
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--polls", type=int, default=500)
    args = parser.parse_args()

    with Product(first_token_delay=0.3, chunk_delay=0.05) as product:
        product.ollama.reply = " ".join(f"word{n}" for n in range(200))  # ~10 s of typing
        from channels_im.platforms.wecom_bot.stream import stream_id_for
        from tests.callbacks.wecom_bot import message_request, refresh_request

        bot = product.make_bot("wecom_bot")
        session = requests.Session()
        streams = []
        for n in range(args.questions):
            msg_id = f"refresh-{n}-{time.time_ns()}"
            assert product.send(session, message_request(bot, f"q{n}", msg_id)).status_code == 200
            streams.append(stream_id_for(str(bot.public_id), msg_id))
        while not product.ollama.served and len(product.ollama.requests) < args.questions:
            time.sleep(0.05)  # the worker has started streaming

        latencies, partial = [], 0
        for n in range(args.polls):
            request = product.prepare(refresh_request(bot, streams[n % len(streams)]))
            started = time.perf_counter()
            response = product.send(session, request)
            latencies.append((time.perf_counter() - started) * 1000)
            partial += is_partial(bot, response)
            time.sleep(0.005)

    p99 = percentile(latencies, 99)
    print(
        summary("wecom_bot refresh", latencies),
        f"{partial} polls saw a partial answer",
        "OK" if p99 < 10 else "OVER 10 ms",
    )
    sys.exit(0 if p99 < 10 and partial else 1)


def is_partial(bot, response: requests.Response) -> bool:
    from tests.callbacks.wecom_bot import stream_of

    stream = stream_of(bot, response)
    return not stream["finish"] and stream["content"].startswith("word")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
    main()
