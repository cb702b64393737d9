"""Streaming: how soon the first words a model writes are visible in the chat.

Feishu bots answer in a CardKit streaming card. For each of N questions this measures
the time from the fake model sending its first token to the fake Feishu API receiving
the reply that shows the card with that text (target: under 300 ms), with the real
product (gunicorn + Celery worker) in between.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/13 CACHE_URL=redis://127.0.0.1:6379/12 \\
    python bench/stream_first_text.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Product, summary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    with Product(first_token_delay=0.5, chunk_delay=0.05) as product:
        product.ollama.reply = " ".join(f"word{n}" for n in range(20))
        from tests.callbacks.feishu import message_request

        bot = product.make_bot("feishu")
        session = requests.Session()

        def one(i: int) -> float:
            msg_id = f"om_stream_{i}_{time.time_ns()}"
            request = message_request(bot, f"question {i}", msg_id)
            assert product.send(session, request).status_code == 200
            shown = product.platforms.wait_for_request(
                lambda r: r.path == f"/open-apis/im/v1/messages/{msg_id}/reply", timeout=30
            )
            return shown.received_at - product.served(f"question {i}").first_token

        with ThreadPoolExecutor(args.concurrency) as pool:
            delays = [s * 1000 for s in pool.map(one, range(args.n))]

    met = max(delays) < 300
    print(
        summary("first visible text after the first token:", delays),
        f"(target: under 300 ms) {'OK' if met else 'MISSED'}",
    )
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
    main()
