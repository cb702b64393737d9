"""Callback acknowledgement while API clients wait for answers: do waiting clients
starve the platforms? Baseline and loaded phases in one run, interleaved rounds.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/13 CACHE_URL=redis://127.0.0.1:6379/12 \\
    python bench/waiting_clients.py --waiters 50 -n 200

The fake model takes --model-delay seconds to its first token, so each waiting client
(`POST /api/v1/messages/` with `wait`) holds its request that long. The figure: the
callbacks' p50 and p99 with waiters over the same without (1.0 = unchanged).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Product, percentile, summary  # noqa: E402

PATIENCE_SECONDS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiters", type=int, default=50, help="API clients waiting at once")
    parser.add_argument("-n", type=int, default=200, help="callbacks per phase")
    parser.add_argument("--model-delay", type=float, default=20.0)
    args = parser.parse_args()

    with Product(first_token_delay=args.model_delay) as product:
        from tests.callbacks.wecom import message_request

        bot = product.make_bot("wecom")
        key = api_key()
        callbacks = [message_request(bot, f"q{i}", f"wait-{i}") for i in range(2 * args.n + 20)]
        session = requests.Session()
        for request in callbacks[:20]:
            product.send(session, request)

        def ack_times(batch: list[dict]) -> list[float]:
            """Milliseconds per callback; one the server did not answer within the
            platforms' patience (WeCom gives up after 5 s) counts as that patience."""
            times = []
            for request in batch:
                prepared = product.prepare(request)
                started = time.perf_counter()
                try:
                    response = session.send(prepared, timeout=PATIENCE_SECONDS)
                except requests.Timeout:
                    times.append(PATIENCE_SECONDS * 1000)
                    continue
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"callback: HTTP {response.status_code}")
            return times

        baseline = ack_times(callbacks[20 : 20 + args.n])
        stop = threading.Event()
        waiting = start_waiters(product.url, key, args.waiters, args.model_delay, stop)
        time.sleep(2)  # every waiter has sent its request and holds it
        loaded = ack_times(callbacks[20 + args.n :])
        stop.set()
        waiting.shutdown(wait=False, cancel_futures=True)

    print(summary("callbacks alone     ", baseline))
    print(summary(f"with {args.waiters:3d} waiting ", loaded))
    unanswered = sum(1 for ms in loaded if ms >= PATIENCE_SECONDS * 1000)
    print(f"callbacks not answered within {PATIENCE_SECONDS:.0f} s: {unanswered} of {len(loaded)}")
    for pct in (50, 99):
        ratio = percentile(loaded, pct) / percentile(baseline, pct)
        print(f"p{pct} with waiters / alone: {ratio:.2f}")


def api_key() -> str:
    from tenants.models import ApiKey, Tenant

    raw = ApiKey.generate()
    tenant = Tenant.objects.get(slug="bench")
    key = ApiKey(tenant=tenant, name=f"bench-{time.time_ns()}", scopes=["chat"])
    key.set_key(raw)
    key.save()
    return raw


def start_waiters(url: str, key: str, count: int, seconds: float, stop: threading.Event):
    """`count` clients, each asking and waiting up to `seconds`, again until stopped."""

    def wait_for_answers(index: int) -> None:
        """Ask and wait; told to poll instead (a 202), read the message once a second."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        while not stop.is_set():
            body = {"text": f"waiter {index}", "user": f"waiter-{index}", "wait": 60}
            sent = session.post(f"{url}/api/v1/messages/", json=body, timeout=seconds + 70)
            message = sent.json()
            while sent.status_code == 202 and not stop.is_set():
                time.sleep(1)
                sent = session.get(f"{url}/api/v1/messages/{message['id']}/", timeout=30)
                if sent.json()["status"] not in ("queued", "answering"):
                    break

    pool = ThreadPoolExecutor(count)
    for index in range(count):
        pool.submit(wait_for_answers, index)
    return pool


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
    main()
