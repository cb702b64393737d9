"""Scaled out as on several machines: two web processes (gunicorn, as production starts them)
and three worker processes, each in its own process group, with beat started three times by
mistake, all sharing one PostgreSQL, one broker and one cache. Nothing a process keeps to
itself may show: whichever web process takes a message or a WeCom robot's poll and whichever
worker answers, every question is answered exactly once, through a worker killed mid-answer,
and the rate limits, the access tokens and the model's cap hold for all processes together."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection

from channels_im.models import Bot
from conversations import texts
from conversations.models import Message
from tests.callbacks import dingtalk, feishu, wecom, wecom_bot
from tests.e2e.worker import Worker, wait_for
from tests.factories import BotFactory, TenantFactory
from tests.fakes.ollama import FakeOllama
from tests.fakes.platforms import FakePlatforms

SHARED = (
    connection.vendor == "postgresql"
    and not settings.CELERY_BROKER_URL.startswith("filesystem")
    and not settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not SHARED,
        reason="needs what separate machines share: PostgreSQL, a broker server and a cache "
        "server (DATABASE_URL, CELERY_BROKER_URL, CACHE_URL), not the embedded defaults",
    ),
]

# A dead worker's questions are handed on within seconds, not minutes: short claims (the
# soft time limit ends a stuck answer before its claim runs out, as in production, and
# leaves room for the answers this test holds back), and a sweep that takes every
# claimable row older than 2 s, so that a question whose task still waits on the broker
# gets a second one. (Production waits 120 s; at 0 the sweep may take a row its web
# process is still storing, which a rate limit would then refuse too late.)
WORKER = {
    "IM_CLAIM_SECONDS": "15",
    "CELERY_TASK_SOFT_TIME_LIMIT": "12",
    "IM_STUCK_AFTER_SECONDS": "2",
    # No progress notices: every message at the fake platforms is an answer or a refusal.
    "IM_SIGN_OF_LIFE_SECONDS": "0",
    "IM_QUEUE_NOTICE_SECONDS": "0",
}
BEAT = {"IM_SWEEP_INTERVAL_SECONDS": "5"}  # the shortest allowed
ANSWER = " ".join(f"word{n}" for n in range(10))
TOKEN_PATHS = (
    "/cgi-bin/gettoken",
    "/open-apis/auth/v3/tenant_access_token/internal",
    "/v1.0/oauth2/accessToken",
)
CREDENTIALS = {
    "wecom_bot": wecom_bot.ROBOT_CREDENTIALS,
    "feishu": {
        "app_id": "cli_scale00000000001",
        "app_secret": "feishu-scale-secret",
        "verification_token": "FeishuScaleToken",
        "encrypt_key": "FeishuScaleKey",
        "bot_open_id": feishu.BOT_OPEN_ID,
    },
    "dingtalk": {**dingtalk.DINGTALK_CREDENTIALS, "card_template_id": "tpl-scale.schema"},
}
UNSETTLED = (Message.Status.QUEUED, Message.Status.ANSWERING)


@dataclass
class Cluster:
    """One deployment's processes: `webs` are the web processes' base URLs."""

    webs: list[str]
    workers: list[Worker]
    beats: list[Worker]

    def post(self, web: int, request: dict[str, Any]) -> requests.Response:
        """A platform's callback, through web process `web`; it must be taken (200)."""
        response = requests.request(
            request["method"],
            self.webs[web] + request["path"],
            data=request["data"],
            headers={"Content-Type": request["content_type"], **request.get("headers", {})},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response


@pytest.fixture
def cluster(spawn_web, spawn_worker, spawn_beat) -> Iterator[Cluster]:
    workers = [spawn_worker(**WORKER) for _ in range(3)]
    beats = [spawn_beat(**BEAT) for _ in range(3)]
    with ThreadPoolExecutor() as pool:  # all start at once
        webs = list(pool.map(lambda _: spawn_web()[0], range(2)))
    # Ready to take tasks, so that no question held back waits long for the last one.
    wait_for(lambda: all(" ready." in worker.output() for worker in workers), timeout=60)
    cluster = Cluster(webs, workers, beats)
    yield cluster
    with ThreadPoolExecutor() as pool:  # all at once: each takes seconds to shut down
        list(pool.map(Worker.stop, [*cluster.workers, *beats]))


@dataclass
class Asked:
    """A question as its asker sees it. A robot's asker sees the stream its client polls,
    through the other web process than the one that took the question."""

    bot: Bot
    msg_id: str
    sender: str
    web: int  # the web process that took it
    stream_id: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)

    def row(self) -> Message:
        return Message.objects.get(bot=self.bot, external_id=self.msg_id)

    @property
    def finished(self) -> bool:
        """Its stream said `finish` (always true of a question without one)."""
        return not self.stream_id or bool(self.seen and self.seen[-1]["finish"])

    def poll(self, cluster: Cluster) -> None:
        """One refresh of its stream, if open, through the other web process."""
        if not self.finished:
            refresh = wecom_bot.refresh_request(self.bot, self.stream_id)
            other = cluster.post(1 - self.web, refresh)
            self.seen.append(wecom_bot.stream_of(self.bot, other))


def ask(cluster: Cluster, bot: Bot, n: int, sender: str = "") -> Asked:
    """Question n to `bot` through web process n % 2, from `sender` (by default one of its
    own, so that no user's rate limit is reached; Feishu's always comes from one user)."""
    text, msg_id, sender = f"question {n}", f"scale-{n}", sender or f"user{n}"
    if bot.platform == "wecom":
        request = wecom.message_request(bot, text, msg_id, sender=sender)
    elif bot.platform == "wecom_bot":
        request = wecom_bot.message_request(bot, text, msg_id, sender=sender)
    elif bot.platform == "feishu":
        msg_id, sender = f"om_scale_{n}", feishu.SENDER_OPEN_ID
        request = feishu.message_request(bot, text, msg_id, group=True)
    else:
        request = dingtalk.message_request(bot, text, msg_id, group=True, sender=sender)
    response = cluster.post(n % 2, request)
    asked = Asked(bot, msg_id, sender, web=n % 2)
    if bot.platform == "wecom_bot":
        asked.stream_id = wecom_bot.stream_of(bot, response)["id"]
    return asked


def ask_at_once(cluster: Cluster, bots: list[Bot], start: int = 0) -> list[Asked]:
    """Questions start, start + 1, … to `bots` in turn, all sent at the same time."""
    with ThreadPoolExecutor(len(bots)) as pool:
        return list(pool.map(lambda pair: ask(cluster, pair[1], pair[0]), enumerate(bots, start)))


def polling(
    cluster: Cluster, questions: list[Asked], condition: Callable[[], bool]
) -> Callable[[], bool]:
    """`condition`, for wait_for: each check comes after one poll of every open stream, as
    WeCom's clients keep polling all along."""

    def check() -> bool:
        for asked in questions:
            asked.poll(cluster)
        return condition()

    return check


@contextmanager
def polled_meanwhile(cluster: Cluster, questions: list[Asked]) -> Iterator[None]:
    """Keep polling the open streams of `questions` from a thread while the block runs,
    as WeCom's clients keep polling all along: a robot's answer may stream to its end
    before the block does (a worker's start takes seconds on a busy machine)."""
    stop = threading.Event()
    failed: list[BaseException] = []
    poll_each = polling(cluster, questions, lambda: False)

    def poll_until_stopped() -> None:
        while not stop.wait(0.2):
            try:
                poll_each()
            except BaseException as error:  # noqa: BLE001 - raised in the test's thread
                failed.append(error)
                return

    thread = threading.Thread(target=poll_until_stopped, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    if failed:
        raise failed[0]


def assert_shown_once(platforms: FakePlatforms, asked: Asked) -> None:
    """The asker's chat shows the answer once, finished: one message (a WeCom app), one
    finished stream (a WeCom robot), one card closed with the whole answer (Feishu,
    DingTalk)."""
    platform = asked.bot.platform
    if platform == "wecom":
        assert texts_to(platforms, asked.sender) == [ANSWER], asked
    elif platform == "wecom_bot":
        assert asked.seen[-1] == {"id": asked.stream_id, "finish": True, "content": ANSWER}
        partial = {s["content"] for s in asked.seen} - {"Thinking…", ANSWER}
        assert partial, f"no poll through the other web process saw the answer growing: {asked}"
    elif platform == "feishu":
        # Requests, not messages: one refused for its token is sent again, the same card.
        replies = platforms.received(f"/open-apis/im/v1/messages/{asked.msg_id}/reply")
        assert {r.json["msg_type"] for r in replies} == {"interactive"}, asked
        [card] = {json.loads(r.json["content"])["data"]["card_id"] for r in replies}
        operations = [op for op in platforms.messages("feishu_card") if op["card_id"] == card]
        closed = json.loads(operations[-1].get("settings", "{}"))
        assert closed == {"config": {"streaming_mode": False}}, operations[-1]
        assert platforms.feishu_card_text(card) == ANSWER
    else:
        question = asked.row()
        # Requests, not cards: one refused for its token is sent again, as the same card.
        [card] = {
            r.json["outTrackId"]
            for r in platforms.received("/v1.0/card/instances/createAndDeliver")
            if r.json["outTrackId"].startswith(f"q{question.pk}-")
        }
        finals = [
            body["content"]
            for body in platforms.messages("dingtalk")
            if body.get("outTrackId") == card and body["isFinalize"]
        ]
        assert finals == [ANSWER]


def texts_to(platforms: FakePlatforms, user: str) -> list[str]:
    """What a WeCom app's messages to `user` said, in order."""
    return [m["markdown"]["content"] for m in platforms.messages("wecom") if m["touser"] == user]


def sweeps_that_handed_rows_on(workers: list[Worker]) -> int:
    """How many sweeps, in all workers' logs, enqueued at least one row again."""
    found = re.findall(r"sweep_stuck_messages\[[^\]]+\] succeeded in \S+ (\d+)", _logs(workers))
    return sum(1 for count in found if int(count) > 0)


def _logs(processes: list[Worker]) -> str:
    return "\n".join(process.output() for process in processes)


@pytest.fixture
def capped_endpoint():
    """A model server of its own, so that its count of answers at once is this test's."""
    with FakeOllama() as server:
        yield server


def test_two_web_and_three_worker_processes_work_as_one(
    cluster, spawn_worker, fake_ollama, fake_platforms, capped_endpoint
):
    tenant = TenantFactory(model_endpoint=fake_ollama.url, max_concurrency=8)
    bots = {}
    for platform in ("wecom", "wecom_bot", "feishu", "dingtalk"):
        credentials = CREDENTIALS.get(platform)
        extra = {"credentials": dict(credentials)} if credentials else {}
        bots[platform] = BotFactory(tenant=tenant, platform=platform, **extra)
    strict = TenantFactory(
        model_endpoint=capped_endpoint.url, max_concurrency=2, user_rate_limit_per_minute=2
    )
    strict_bot = BotFactory(tenant=strict, platform="wecom")
    fake_ollama.reply, fake_ollama.first_token_delay, fake_ollama.chunk_delay = ANSWER, 0.3, 0.25
    capped_endpoint.reply, capped_endpoint.first_token_delay = ANSWER, 0.3

    # Six answers at once, one in each worker process, so that the worker killed holds
    # two: the model holds them back until all six have asked, then they stream together.
    fake_ollama.hang = True
    platforms = ["wecom_bot", "feishu", "dingtalk", "wecom_bot", "feishu", "wecom"]
    first = ask_at_once(cluster, [bots[platform] for platform in platforms])
    wait_for(lambda: fake_ollama.in_flight == 6, timeout=60, worker=cluster.workers[0])
    fake_ollama.hang = False
    fake_ollama.release()
    live = [asked for asked in first if asked.bot.platform != "wecom"]
    streaming = polling(
        cluster, first, lambda: all("live" in asked.row().reply_context for asked in live)
    )
    wait_for(streaming, worker=cluster.workers[0])
    cluster.workers[0].stop(signal.SIGKILL)
    wait_for(polling(cluster, first, lambda: len(fake_ollama.disconnects) == 2))

    # While it is dead: a question on every platform; one user over the rate limit; eight
    # questions for a model that takes two at a time. Then it comes back, as a supervisor
    # restarts it.
    second = ask_at_once(cluster, list(bots.values()), start=6)
    with polled_meanwhile(cluster, second):
        chatty = over_the_rate_limit(cluster, strict_bot, start=10)
        capped = ask_at_once(cluster, [strict_bot] * 8, start=14)
        cluster.workers.append(spawn_worker(**WORKER))
    questions = [*first, *second, *capped]
    wait_for(
        polling(cluster, questions, lambda: all_done(questions, fake_ollama, capped_endpoint)),
        timeout=90,
        worker=cluster.workers[1],
    )

    for asked in questions:
        assert_shown_once(fake_platforms, asked)
    assert fake_platforms.messages("wecom_bot") == []  # no stream needed a late message
    rows = Message.objects.filter(role=Message.Role.USER)
    refused = [asked.row().pk for asked in chatty[2:]]
    assert set(rows.exclude(pk__in=refused).values_list("status", flat=True)) == {"answered"}
    answers = Message.objects.filter(role=Message.Role.ASSISTANT)
    assert all(a.status == Message.Status.ANSWERED and a.delivered_at for a in answers)
    assert sorted(a.content for a in answers) == sorted(
        [ANSWER] * (len(questions) + 2) + [texts.rate_limited(strict)]  # 2: the user's
    )
    # The two killed mid-answer were answered on a second try, found by a sweep; every
    # answer was generated to its end exactly once.
    assert rows.filter(attempts__gte=2).count() >= 2
    assert len(fake_ollama.served) == len(first) + len(second)
    assert sweeps_that_handed_rows_on(cluster.workers) >= 1
    for beat in cluster.beats:  # each sent sweeps while the work was in flight
        assert "Sending due task sweep-stuck-messages" in beat.output(), beat.output()[-2000:]
    # Whichever web process took them, the user's third and fourth messages were refused
    # (and the user told once); whichever worker answered, the model took two at a time.
    assert [asked.row().status for asked in chatty] == [
        Message.Status.ANSWERED,
        Message.Status.ANSWERED,
        Message.Status.RATE_LIMITED,
        Message.Status.RATE_LIMITED,
    ]
    assert sorted(texts_to(fake_platforms, "chatty")) == sorted(
        [ANSWER, ANSWER, texts.rate_limited(strict)]
    )
    assert (len(capped_endpoint.served), capped_endpoint.peak_in_flight) == (10, 2)
    assert token_fetches(fake_platforms) == [1, 1, 1]

    # Every platform revokes its tokens (their secrets were reset): each process that
    # remembered one finds it refused, and one new token serves them all.
    fake_platforms.expire_all_tokens()
    last = ask_at_once(cluster, [*bots.values(), *bots.values()], start=22)
    wait_for(polling(cluster, last, lambda: all_done(last, fake_ollama, capped_endpoint)))
    for asked in last:
        assert_shown_once(fake_platforms, asked)
    assert token_fetches(fake_platforms) == [2, 2, 2]


def over_the_rate_limit(cluster: Cluster, bot: Bot, start: int) -> list[Asked]:
    """Four messages of one user (the tenant allows two a minute), through the web
    processes in turn, within one minute of the clock, which the limit counts in."""
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60)
    return [ask(cluster, bot, n, sender="chatty") for n in range(start, start + 4)]


def all_done(questions: list[Asked], *endpoints: FakeOllama) -> bool:
    """Every stream finished, every row final, and no model request left running."""
    unsettled = Message.objects.filter(status__in=UNSETTLED).exists()
    running = any(endpoint.in_flight for endpoint in endpoints)
    return all(asked.finished for asked in questions) and not unsettled and not running


def token_fetches(platforms: FakePlatforms) -> list[int]:
    """How often each platform's token endpoint was called: WeCom, Feishu, DingTalk."""
    return [len(platforms.received(path)) for path in TOKEN_PATHS]
