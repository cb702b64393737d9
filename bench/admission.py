"""Model admission: what it adds to a message's path, and whether a queue behind a slow
endpoint is answered in arrival order.

    python bench/admission.py                              # embedded default (SQLite)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/13 CACHE_URL=redis://127.0.0.1:6379/12 \\
    python bench/admission.py

1. The work on one question (the intake's statement, which puts it in line, then the
   worker's claim, model, send, record: the pipeline, in this process, against the fake
   model and platform), with admission and with admission replaced by nothing,
   interleaved; and the worker's two admission steps (taking the slot, freeing it) timed
   alone. Admission must add under 5 ms at the median.
2. The product as in production (gunicorn, a Celery worker) with a model that takes
   --slow seconds an answer: --queue questions sent at once wait behind the endpoint's
   cap, and must be answered in the order they came.
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

BUDGET_MS = 5.0
# Two questions granted slots at about the same moment (two answers ended together) race
# to the model: one may reach it this much after the other and still count as in order.
SAME_MOMENT_MS = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=300, help="questions per mode in part 1")
    parser.add_argument("--queue", type=int, default=50, help="questions queued in part 2")
    parser.add_argument("--slow", type=float, default=0.2, help="seconds per answer, part 2")
    args = parser.parse_args()

    with Product(first_token_delay=0.0) as product:
        bot = product.make_bot("wecom")
        over = path_cost(product, bot, args.n)
        in_order = queue_order(product, bot, args.queue, args.slow)
    sys.exit(0 if over < BUDGET_MS and in_order else 1)


def path_cost(product: Product, bot, n: int) -> float:  # noqa: ANN001 - a channels_im Bot
    """Part 1; returns the median milliseconds admission adds."""
    from conversations import admission, pipeline

    with_admission, without, steps = [], [], []
    real_slot, real_admit, real_release = pipeline.slot, admission.admit, admission.Lease.release
    real_place = admission.place

    def timed_admit(*args):  # noqa: ANN002, ANN202
        started = time.perf_counter()
        try:
            return real_admit(*args)
        finally:
            steps[-1] += time.perf_counter() - started

    def timed_release(lease) -> None:  # noqa: ANN001
        started = time.perf_counter()
        real_release(lease)
        steps[-1] += time.perf_counter() - started

    admission.admit, admission.Lease.release = timed_admit, timed_release
    try:
        for i in range(20 + 2 * n):  # the first 20 warm connections and caches up
            on = i % 2 == 0
            pipeline.slot = real_slot if on else _no_slot
            admission.place = real_place if on else _nowhere  # no place in line
            if on:
                steps.append(0.0)
            started = time.perf_counter()
            question = _question(bot, i)
            pipeline.answer(question.pk)
            elapsed = (time.perf_counter() - started) * 1000
            if i >= 20:
                (with_admission if on else without).append(elapsed)
    finally:
        pipeline.slot, admission.place = real_slot, real_place
        admission.admit, admission.Lease.release = real_admit, real_release
    steps = [s * 1000 for s in steps[10:]]
    added = percentile(with_admission, 50) - percentile(without, 50)
    print(f"1. a message's path in the worker, {_database()}:")
    print(summary("   with admission   ", with_admission))
    print(summary("   without admission", without))
    print(summary("   admission's steps ", steps))  # in the worker: the slot, taken and freed
    verdict = "OK" if added < BUDGET_MS else f"OVER {BUDGET_MS:.0f} ms"
    print(f"   admission adds {added:+.2f} ms at p50 (its steps: {percentile(steps, 50):.2f} ms)")
    print(f"   {verdict}")
    return added


def queue_order(product: Product, bot, count: int, slow: float) -> bool:  # noqa: ANN001
    """Part 2; returns whether the questions were answered in the order they came."""
    from conversations.models import Message
    from tests.callbacks.wecom import message_request

    product.ollama.reset()
    product.ollama.first_token_delay = slow
    texts = [f"queued question {n:02d}" for n in range(count)]
    session = requests.Session()
    started = time.monotonic()
    for n, text in enumerate(texts):
        response = product.send(session, message_request(bot, text, f"bench-queue-{n}"))
        response.raise_for_status()
    questions = Message.objects.filter(content__in=texts)
    deadline = time.monotonic() + 60 + count * slow
    while questions.filter(status="answered").count() < count:
        if time.monotonic() > deadline:
            raise RuntimeError("the queued questions were not all answered in time")
        time.sleep(0.1)
    seconds = time.monotonic() - started
    arrival = list(questions.order_by("created_at", "id").values_list("content", flat=True))
    asked = {
        served.body["messages"][-1]["content"]: served.started for served in product.ollama.served
    }
    overtaken = _overtaken(arrival, asked)
    cap = bot.tenant.max_concurrency
    peak = product.ollama.peak_in_flight
    print(f"2. {count} questions behind a slow endpoint ({slow} s an answer, {cap} at once):")
    print(f"   answered {count}/{count} in {seconds:.1f} s; at most {peak} at once at the model")
    print(f"   model asked in arrival order: {_verdict(overtaken)}")
    return peak <= cap and all(ms <= SAME_MOMENT_MS for _, ms in overtaken)


def _overtaken(arrival: list[str], asked: dict[str, float]) -> list[tuple[str, float]]:
    """Each question that reached the model after one that came after it, with by how many
    milliseconds it was overtaken."""
    found = []
    for n, text in enumerate(arrival):
        later = [asked[other] for other in arrival[n + 1 :]]
        if later and min(later) < asked[text]:
            found.append((text, (asked[text] - min(later)) * 1000))
    return found


def _verdict(overtaken: list[tuple[str, float]]) -> str:
    if not overtaken:
        return "yes"
    worst = max(ms for _, ms in overtaken)
    if worst <= SAME_MOMENT_MS:
        return (
            f"yes ({len(overtaken)} reached it up to {worst:.0f} ms after the next one, "
            "granted a slot at about the same moment)"
        )
    return f"NO: overtaken by up to {worst:.0f} ms: {overtaken}"


class _NoLease:
    """Admission replaced by nothing: a slot that renews and frees nothing."""

    answer_seconds = None

    def renew(self) -> None:
        pass

    def __enter__(self) -> _NoLease:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _no_slot(question, endpoint, stop) -> _NoLease:  # noqa: ANN001
    return _NoLease()


def _nowhere(tenant) -> None:  # noqa: ANN001
    return None


def _question(bot, n: int):  # noqa: ANN001, ANN202 - a conversations Message
    """A question stored as the intake stores it (in line, unless admission.place says
    nowhere), but sent to no worker: this process answers it."""
    from channels_im.platforms.base import InboundMessage
    from conversations.models import Message
    from conversations.services import store

    inbound = InboundMessage(f"path-{n}-{time.time_ns()}", "bench-user", "bench-user", f"q{n}")
    return store(bot, inbound, Message.Status.QUEUED)


def _database() -> str:
    from django.db import connection

    return f"{connection.vendor}"


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
    main()
