"""How long a platform waits for our answer to its callback, while the model is slow.

Starts the real product (gunicorn + a Celery worker) against the configured database,
broker and cache, a fake Ollama that takes FIRST_TOKEN_DELAY seconds to its first token
and a fake platform API, then sends N signed callbacks, CONCURRENCY in flight, from a load
generator in a process of its own (bench/loadgen.py), and prints the response-time
percentiles. The callback must not wait for the model, so p99 should stay far below the
model's delay. With --questions-held the worker answers nothing meanwhile: what is left
is the door's own time, as where the workers have machines of their own (here, on two
shared cores, the worker's work on each question delays the next callback).

    python bench/callback_latency.py                       # embedded default (SQLite)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/13 CACHE_URL=redis://127.0.0.1:6379/12 \\
    python bench/callback_latency.py --platform all
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from bench.harness import Product, percentile, summary  # noqa: E402

PLATFORMS = ("wecom", "wecom_bot", "dingtalk", "feishu")
WARM_UP = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", default="wecom", choices=(*PLATFORMS, "all"))
    parser.add_argument("-n", type=int, default=500, help="callbacks per platform")
    parser.add_argument("--concurrency", type=int, default=1, help="callbacks in flight")
    parser.add_argument("--first-token-delay", type=float, default=2.0)
    parser.add_argument("--budget-ms", type=float, default=50.0, help="p99 must stay under it")
    parser.add_argument(
        "--questions-held",
        action="store_true",
        help="the worker answers nothing while callbacks are timed: the door's own figures, "
        "as with the workers on machines of their own",
    )
    args = parser.parse_args()

    platforms = PLATFORMS if args.platform == "all" else (args.platform,)
    failed = False
    with Product(first_token_delay=args.first_token_delay) as product:
        for platform in platforms:
            with product.questions_held() if args.questions_held else nullcontext():
                latencies = run(product, platform, args.n, args.concurrency)
            failed |= report(platform, latencies, args.budget_ms)
        print(f"model calls started meanwhile: {len(product.ollama.requests)}")
    sys.exit(1 if failed else 0)


def run(product: Product, platform: str, n: int, concurrency: int) -> list[float]:
    """The acknowledgement times (ms) of `n` callbacks, `concurrency` in flight, sent by
    the load generator in a process of its own (bench/loadgen.py says why)."""
    builders = importlib.import_module(f"tests.callbacks.{platform}")
    bot = product.make_bot(platform)
    # As many in flight as measured: every web process's imports, its threads and
    # their database connections, and the client's connections, made before the clock.
    warm_up = max(WARM_UP, concurrency)
    callbacks = [
        product.encode(builders.message_request(bot, f"question {i}", f"bench-{platform}-{i}"))
        for i in range(n + warm_up)
    ]
    plan = loadgen.Plan(
        host="127.0.0.1",
        port=product.port,
        requests=callbacks[warm_up:],
        offsets=[],
        timeout=30,
        connections=concurrency,
        warm_up=callbacks[:warm_up],
        in_flight=concurrency,
    )
    before: list[float] = []

    def when_ready() -> None:
        time.sleep(1)  # let the worker take the warm-up's tasks before measuring
        before.extend((product.web_cpu_seconds(), product.worker_cpu_seconds()))

    sent = loadgen.run(plan, when_ready)
    web = product.web_cpu_seconds() - before[0]
    worker = product.worker_cpu_seconds() - before[1]
    if failed := [r.outcome for r in sent.warm_up + sent.results if r.outcome != "200"]:
        raise RuntimeError(f"{platform}: {len(failed)} callbacks failed, e.g. {failed[0]}")
    print(f"{platform:10s} web processes' CPU per callback: {web / n * 1000:.2f} ms")
    # Meanwhile: the questions' dispatch, and what the worker did with them so far.
    print(f"{platform:10s} worker processes' CPU per callback: {worker / n * 1000:.2f} ms")
    client = sent.cpu_seconds / n * 1000
    print(f"{platform:10s} the load generator's CPU per callback: {client:.2f} ms")
    return [r.latency * 1000 for r in sent.results]  # each answered: none is None


def report(platform: str, latencies: list[float], budget_ms: float) -> bool:
    p99 = percentile(latencies, 99)
    verdict = "OK" if p99 < budget_ms else f"OVER {budget_ms:.0f} ms"
    print(summary(f"{platform:10s}", latencies), verdict)
    return p99 >= budget_ms


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
    main()
