"""A real Celery worker process, on the configured broker, against the test database."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    def __init__(self, env: dict[str, str], name: str = "worker", queues: str | None = None):
        """Started the standard way (every declared queue) unless `queues` (as for -Q)."""
        self.env = env
        self.queues = queues
        self.process: subprocess.Popen | None = None
        # Log records go to stderr; Celery prints its banner to stdout.
        self.log = ROOT / "var" / f"e2e-{os.getpid()}-{name}.log"
        self.banner = self.log.with_suffix(".out")

    def start(self) -> None:
        self.log.parent.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "assistant", *self.arguments()],
            cwd=ROOT,
            env=self.env,
            stdout=self.banner.open("w"),
            stderr=self.log.open("w"),
            start_new_session=True,
        )

    def arguments(self) -> list[str]:
        """The celery command's arguments after `-A assistant`."""
        return [
            "worker",
            *(["-Q", self.queues] if self.queues else []),
            "-c",
            "2",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
        ]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def output(self) -> str:
        """The log records (stderr)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Beat(Worker):
    """A real `celery beat` process, which sends the periodic tasks (the sweep) to the
    broker; started and stopped like a worker, in its own process group."""

    def arguments(self) -> list[str]:
        # Its own schedule file: two beats never share one.
        return ["beat", "-s", str(self.log.with_suffix(".schedule")), "-l", "INFO"]


def wait_for(condition, timeout: float = 30.0, worker: Worker | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    log = worker.output()[-4000:] if worker else ""
    raise AssertionError(f"condition not met within {timeout}s\n{log}")


def answered(count: int = 1, worker: Worker | None = None) -> list:
    """The answers, once the worker has recorded `count` questions as answered: the last
    thing it does for each, after the platform received the answer and its row was written."""
    from conversations.models import Message

    wait_for(
        lambda: Message.objects.filter(role="user", status="answered").count() == count,
        worker=worker,
    )
    return list(Message.objects.filter(role="assistant").order_by("id"))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private Redis this test may stop and start again, unlike the shared one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=10)

    def stop(self) -> None:
        if self.process:
            self.process.kill()
            self.process.wait()

    def unacknowledged(self) -> int:
        """Messages a worker took but has not acknowledged (kombu keeps them in a hash)."""
        import redis

        return redis.Redis(port=self.port, socket_timeout=0.5).hlen("unacked")

    def _answers(self) -> bool:
        import redis

        try:
            return redis.Redis(port=self.port, socket_timeout=0.5).ping()
        except redis.ConnectionError:
            return False


def use_broker(url: str) -> None:
    """Point this process's Celery app at another broker (pools are rebuilt lazily)."""
    from assistant.celery import app

    app.conf.broker_url = app.conf.broker_write_url = app.conf.broker_read_url = url
    app._pool = None
    app.amqp._producer_pool = None
