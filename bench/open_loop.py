"""Open-loop load: WeCom callbacks arriving at a fixed rate, whatever the product's answers
do, each from a person of its own; then whether every question was answered exactly once.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/13 CACHE_URL=redis://127.0.0.1:6379/12 \\
    python bench/open_loop.py --rate 200 --seconds 60
    python bench/open_loop.py --rate 400 --seconds 60 --ack-p99-ms 0   # targets: no
                                                   # timeouts, every message answered once

Each callback is due at a time fixed before the clock starts (evenly spaced, or
--poisson), is signed and encrypted beforehand (so a run must end within WeCom's hour of
clock skew), and is sent by a generator in a process of its own over kept-alive
connections (bench/loadgen.py). Its acknowledgement latency runs from its due time, so a
late generator or a slow product shows, and neither can hide the other. A callback
unanswered after --timeout seconds (WeCom gives up after 5) is a timeout. CPU is read
from /proc before the first callback, after the last one is acknowledged and once every
question has its outcome, for each part: the web (gunicorn's master and workers), the Celery worker
and its pool, PostgreSQL (this database's backends, and every postgres process), Redis,
the fakes (threads of this process) and the generator. PostgreSQL and Redis are the
machine's, so their "every process" rows count other clients too, as the machine's row
counts everything.

Then it waits until every question stored has its outcome in the database (answered, or
failed past its answer budget), or --stall seconds pass with none settling, and --grace
seconds more for any answer sent twice.

Targets (exit 1 when one is missed): acknowledgement p99 within --ack-p99-ms (20, the
issue's figure at 200/s; 0 checks nothing), at most --max-timeouts timeouts (0), every
callback answered 200, and every question answered exactly once: the fake WeCom API
accepted one message carrying the model's answer for each acknowledged callback, and
never two for any callback (one given up on may be answered once or not at all: WeCom
would send it again). Queue notices, "writing" messages and apologies are counted apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import cpu, loadgen  # noqa: E402
from bench.harness import Product, percentile, summary  # noqa: E402

# A generator sending this late at the 99th percentile (ms) is not keeping its schedule.
LAG_WARNING_MS = 5.0
SEND_PATH = "/cgi-bin/message/send"
QUESTION = "question from {}"  # the text each sender asks
WARM_UP, PERSON = "warm-", "person-"  # the senders' names: prefix and number
UNSETTLED = ("queued", "answering")  # a question's statuses before its outcome
# The CPU table's rows, in its order. PostgreSQL and Redis are the machine's: other
# clients' work shows in their rows, and everything's in the machine's.
WEB, WORKER = "web: gunicorn master + workers", "worker: celery + its pool"
BACKENDS, POSTGRES = "postgres: this database's backends", "postgres: every process"
REDIS, FAKES = "redis-server", "fakes: Ollama + platform API"
GENERATOR, MACHINE = "load generator", "machine: every process"
PARTS = (WEB, WORKER, BACKENDS, POSTGRES, REDIS, FAKES, GENERATOR, MACHINE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="callbacks a second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to send")
    parser.add_argument("--poisson", type=int, metavar="SEED", help="Poisson arrivals")
    parser.add_argument("--timeout", type=float, default=5.0, help="client gives up (s)")
    parser.add_argument("--connections", type=int, default=32, help="opened beforehand")
    parser.add_argument("--warm-up", type=int, default=100, help="callbacks before the clock")
    parser.add_argument("--model-delay", type=float, default=0.0, help="fake time to 1st token")
    # Above the worker's processes (4): admission then holds no question back, and the
    # answers are the gateway's pace, not the model's.
    parser.add_argument("--model-slots", type=int, default=64, help="tenant's max_concurrency")
    parser.add_argument(
        "--stall",
        type=float,
        default=60.0,
        help="stop waiting for the questions' outcomes after this many seconds without one",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=5.0,
        help="seconds to wait, once all have their outcome, for an answer sent twice",
    )
    parser.add_argument("--ack-p99-ms", type=float, default=20.0)
    parser.add_argument("--max-timeouts", type=int, default=0)
    args = parser.parse_args()

    count = round(args.rate * args.seconds)
    with Product(first_token_delay=args.model_delay) as product:
        bot = product.make_bot("wecom", max_concurrency=args.model_slots)
        warm_up = [f"{WARM_UP}{i}" for i in range(args.warm_up)]
        senders = [f"{PERSON}{i}" for i in range(count)]
        plan = loadgen.Plan(
            host="127.0.0.1",
            port=product.port,
            requests=callbacks(product, bot, senders),
            offsets=loadgen.arrivals(max(count, args.warm_up), args.rate, args.poisson),
            timeout=args.timeout,
            connections=args.connections,
            warm_up=callbacks(product, bot, warm_up),
        )
        readings: list[Reading] = []

        def start_of_window() -> None:
            # The warm-up's answers in first, so the window starts quiet.
            wait_until_settled(WARM_UP, args.warm_up, args.stall)
            product.check_ours()
            readings.append(Reading.take(product))

        run = loadgen.run(plan, start_of_window)
        readings.append(Reading.take(product))
        acknowledged = sum(r.outcome == "200" for r in run.results)
        wait_until_settled(PERSON, acknowledged, args.stall)
        readings.append(Reading.take(product))
        time.sleep(args.grace)  # for an answer sent twice, which may come late
        answered, others = tally(product, senders)
        statuses = question_statuses(PERSON)
        answer_times = sent_at(product, senders)
        questions = {QUESTION.format(sender) for sender in senders}  # asked of the model
        model_calls = sum(
            body["messages"][-1]["content"] in questions for body in product.ollama.requests
        )
        product.check_ours()

    arrivals = [run.start + offset for offset in plan.offsets[:count]]
    met = report_acks(run, plan.offsets[:count], args)
    report_cpu(readings, run, count)
    print(f"the model was asked {model_calls} times for {count} questions")
    met &= report_answers(senders, run.results, answered, others, statuses)
    report_answer_times(senders, answer_times, arrivals)
    sys.exit(0 if met else 1)


def callbacks(product: Product, bot, senders: list[str]) -> list[bytes]:  # noqa: ANN001 - a Bot
    """One signed, encrypted WeCom text callback from each sender, as written to the socket."""
    from tests.callbacks.wecom import wecom_post, wecom_text_xml, with_query

    run = time.time_ns()  # message ids of this run's own: the cache outlives a run
    encoded = []
    for sender in senders:
        query, body = wecom_post(
            bot.credentials,
            wecom_text_xml(QUESTION.format(sender), msg_id=f"{run}-{sender}", sender=sender),
        )
        path = with_query(bot.callback_path, query)
        encoded.append(
            product.encode(
                {"method": "POST", "path": path, "data": body, "content_type": "text/xml"}
            )
        )
    return encoded


@dataclass(frozen=True)
class Reading:
    """CPU seconds so far by part of the system, and this database's PostgreSQL backends'
    own by pid (a backend that ends between two readings is lost to them)."""

    parts: dict[str, float]
    backends: dict[int, float]
    work: dict[str, float] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)

    @classmethod
    def take(cls, product: Product) -> Reading:
        table = cpu.processes()
        parts = {
            WEB: cpu.tree_seconds(table, product.processes[0].pid),
            WORKER: cpu.tree_seconds(table, product.processes[1].pid),
            # Its threads are the fakes; the generator is a child of it, not counted here.
            FAKES: table[os.getpid()].own,
            MACHINE: cpu.machine_busy_seconds(),
        }
        for name, label in (("postgres", POSTGRES), ("redis-server", REDIS)):
            if roots := cpu.roots_named(table, name):
                parts[label] = sum(cpu.tree_seconds(table, root) for root in roots)
        backends = {pid: table[pid].own for pid in database_backends() if pid in table}
        return cls(parts, backends, work_done(product))

    def since(self, earlier: Reading) -> dict[str, float]:
        """CPU seconds spent by each part between `earlier` and this reading."""
        spent = {name: value - earlier.parts[name] for name, value in self.parts.items()}
        if self.backends:
            spent[BACKENDS] = sum(
                seconds - earlier.backends.get(pid, 0.0) for pid, seconds in self.backends.items()
            )
        return spent


# What the database and the broker did, as their own statistics count it.
_DATABASE_WORK = {
    "database transactions (commits + rollbacks)": "xact_commit + xact_rollback",
    "database rows inserted": "tup_inserted",
    "database rows updated": "tup_updated",
    "database rows deleted": "tup_deleted",
}
WAL_BYTES = "database WAL bytes (the whole server's)"
REDIS_COMMANDS = "Redis commands (the whole server's)"


def work_done(product: Product) -> dict[str, float]:
    """Counters of this run's database (PostgreSQL's pg_stat_database, flushed first), of
    its server's write-ahead log, and of the Redis server behind the broker (INFO's
    total_commands_processed)."""
    from django.db import connection

    counters: dict[str, float] = {}
    if connection.vendor == "postgresql":
        time.sleep(1.0)  # backends report their counts at most once a second when busy
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            columns = ", ".join(_DATABASE_WORK.values())
            cursor.execute(
                f"SELECT {columns} FROM pg_stat_database WHERE datname = current_database()"  # noqa: S608
            )
            counters.update(zip(_DATABASE_WORK, cursor.fetchone(), strict=True))
            # What every row, index entry and commit wrote to the log: the writes' cost. The
            # server's, full-page images included (each run starts from a checkpoint: the
            # scratch database's CREATE DATABASE takes one).
            cursor.execute("SELECT pg_current_wal_lsn() - '0/0'")
            counters[WAL_BYTES] = float(cursor.fetchone()[0])
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if broker.startswith("redis://"):
        import redis

        counters[REDIS_COMMANDS] = redis.Redis.from_url(broker).info("stats")[
            "total_commands_processed"
        ]
    return counters


def database_backends() -> list[int]:
    """The pids of the PostgreSQL backends connected to this run's database (none on
    another database)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


def tally(product: Product, senders: list[str]) -> tuple[Counter[str], Counter[str]]:
    """Per sender: the messages the fake WeCom API accepted carrying the model's answer,
    and those carrying anything else (a queue notice, a "writing" message)."""
    reply, wanted = product.ollama.reply, set(senders)
    answers: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for body in product.platforms.messages("wecom"):
        if body.get("touser") in wanted:
            (answers if content(body) == reply else others)[body["touser"]] += 1
    return answers, others


def content(body: dict) -> str | None:
    """The text of a WeCom app message's body (text or markdown)."""
    return (body.get(body.get("msgtype", "")) or {}).get("content")


def question_statuses(prefix: str) -> Counter[str]:
    """How many questions from the senders whose names start with `prefix` the database
    holds, by status."""
    from django.db.models import Count

    from conversations.models import Message

    rows = Message.objects.filter(role=Message.Role.USER, sender__startswith=prefix)
    return Counter(dict(rows.order_by().values_list("status").annotate(n=Count("id"))))


def wait_until_settled(prefix: str, count: int, stall: float) -> None:
    """Return once at least `count` questions from senders named `prefix`… are stored and
    none waits or is being answered, or once `stall` seconds have passed with none
    settling (a callback given up on may still be stored, or not)."""
    settled, progress = 0, time.monotonic()
    while True:
        statuses = question_statuses(prefix)
        unsettled = sum(statuses[status] for status in UNSETTLED)
        if (done := statuses.total() - unsettled) > settled:
            settled, progress = done, time.monotonic()
        if (done >= count and not unsettled) or time.monotonic() - progress > stall:
            return
        time.sleep(0.5)


def sent_at(product: Product, senders: list[str]) -> dict[str, float]:
    """When (time.monotonic) the answer to each sender last reached the fake API."""
    reply, wanted, times = product.ollama.reply, set(senders), {}
    for request in product.platforms.received(SEND_PATH):
        body = request.json or {}
        if body.get("touser") in wanted and content(body) == reply:
            times[body["touser"]] = request.received_at
    return times


def report_acks(run: loadgen.Run, offsets: list[float], args: argparse.Namespace) -> bool:
    """Print the acknowledgements' figures; whether they met the targets."""
    results, count = run.results, len(run.results)
    timeouts = sum(r.outcome == "timeout" for r in results)
    failed = Counter(r.outcome for r in results if r.outcome not in ("200", "timeout"))
    acked = [
        (offset, r.latency)
        for offset, r in zip(offsets, results, strict=True)
        if r.latency is not None
    ]
    ok = sum(r.outcome == "200" for r in results)
    late = [r.late * 1000 for r in results]
    # Timeouts and errors count as slower than everything: a percentile over all sent.
    latencies = [r.latency * 1000 if r.latency is not None else float("inf") for r in results]
    last = max(offset + latency for offset, latency in acked) if acked else float("inf")
    arrivals = f"Poisson, seed {args.poisson}" if args.poisson is not None else "evenly spaced"
    print(
        f"offered {count} callbacks over {count / args.rate:.1f} s ({args.rate:g}/s, "
        f"{arrivals}); acknowledged {ok} with 200 ({ok / last:.1f}/s)"
    )
    print(summary("acknowledgement, from due time:", latencies))
    print(summary("generator, sent late by:       ", late))
    print(f"connections opened: {run.connections}; generator CPU: {run.cpu_seconds:.2f} s")
    if percentile(late, 99) > LAG_WARNING_MS:
        print(
            f"WARNING: the generator fell behind its schedule (p99 {percentile(late, 99):.1f} "
            "ms late): its arrivals were burstier than planned"
        )
    p99 = percentile(latencies, 99)
    met = {
        f"ack p99 {p99:.1f} ms <= {args.ack_p99_ms:g} ms": not args.ack_p99_ms
        or p99 <= args.ack_p99_ms,
        f"timeouts {timeouts} <= {args.max_timeouts}": timeouts <= args.max_timeouts,
        f"failed callbacks {sum(failed.values())} {dict(failed)} = 0": not failed,
    }
    return verdicts(met)


def report_cpu(readings: list[Reading], run: loadgen.Run, count: int) -> None:
    """Print each part's CPU while sending and until every question has its outcome, and
    the latter per callback."""
    before, sent, settled = readings
    sending, total = sent.since(before), settled.since(before)
    sending[GENERATOR] = total[GENERATOR] = run.cpu_seconds
    windows = (
        f"sending {sent.at - before.at:.0f} s",
        f"until all settled {settled.at - before.at:.0f} s",
    )
    print(f"{'CPU seconds':40s} {windows[0]:>12s} {windows[1]:>20s} {'ms/callback':>12s}")
    for name in (part for part in PARTS if part in total):
        seconds = total[name]
        print(f"{name:40s} {sending[name]:12.2f} {seconds:20.2f} {seconds / count * 1000:12.2f}")
    print(f"{'per callback, until all settled':40s}")
    for name, value in settled.work.items():
        print(f"{name:40s} {(value - before.work[name]) / count:12.2f}")


def report_answers(
    senders: list[str],
    results: list[loadgen.Result],
    answers: Counter[str],
    others: Counter[str],
    statuses: Counter[str],
) -> bool:
    """Print what became of the questions; whether each acknowledged one was answered
    exactly once and none given up on twice (a platform would send that one again, and
    the product answer it once)."""
    acknowledged = {s for s, r in zip(senders, results, strict=True) if r.outcome == "200"}
    given_up = [s for s in senders if s not in acknowledged]
    missing = [s for s in senders if s in acknowledged and not answers[s]]
    twice = [s for s in senders if answers[s] > 1]
    by_status = ", ".join(f"{status} {n}" for status, n in statuses.most_common())
    print(f"questions stored: {statuses.total()} ({by_status})")
    print(
        f"answered: {len(acknowledged) - len(missing)} of {len(acknowledged)} acknowledged, "
        f"{sum(1 for s in given_up if answers[s])} of {len(given_up)} given up on; "
        f"other messages (queue notices, 'writing', apologies): {others.total()}"
    )
    return verdicts(
        {
            f"exactly once: {len(missing)} acknowledged and unanswered {missing[:3]}, "
            f"{len(twice)} answered twice {twice[:3]}": not missing and not twice
        }
    )


def report_answer_times(
    senders: list[str], answer_times: dict[str, float], arrivals: list[float]
) -> None:
    """Print how long answers took from their callbacks' due times."""
    delays = [
        (answer_times[s] - due) * 1000
        for s, due in zip(senders, arrivals, strict=True)
        if s in answer_times
    ]
    if delays:
        print(summary("answer sent, from due time:    ", delays))
        drained = max(answer_times.values()) - arrivals[-1]
        print(f"last answer sent {drained:.1f} s after the last callback was due")


def verdicts(checks: dict[str, bool]) -> bool:
    for label, held in checks.items():
        print(f"{'OK    ' if held else 'MISSED'} {label}")
    return all(checks.values())


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
    main()
