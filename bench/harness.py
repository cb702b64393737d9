"""The product under load, started as in production but on this machine's loopback only:
gunicorn (gunicorn.conf.py) and a Celery worker (the settings' pool and concurrency) as
separate processes, a fake Ollama and a fake platform API."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from bench import cpu, loadgen
from common.collector import freeze_start_up

ROOT = Path(__file__).resolve().parents[1]

CREDENTIALS = {
    "wecom": {
        "corp_id": "wwbench",
        "agent_id": "1000002",
        "secret": "bench-secret",
        "token": "BenchToken",
        "encoding_aes_key": "A" * 43,
    },
    "wecom_bot": {"token": "BenchToken", "encoding_aes_key": "B" * 43},
    "dingtalk": {
        "app_key": "dingbench",
        "app_secret": "bench-app-secret",
        "robot_code": "dingbench",
    },
    "feishu": {
        "app_id": "cli_bench",
        "app_secret": "bench-secret",
        "verification_token": "BenchVerify",
        "encrypt_key": "BenchEncryptKey",
    },
}


def bench_secrets() -> None:
    """The settings' secrets and module, for a benchmark's own processes (not a real
    installation's: these are in the repository)."""
    os.environ.setdefault("SECRET_KEY", "bench-only-secret")
    os.environ.setdefault("FIELD_ENCRYPTION_KEY", "YmVuY2gtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE=")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1)]


def summary(label: str, values: list[float]) -> str:
    """One line of milliseconds: count, median, tail and worst."""
    return (
        f"{label} n={len(values)} p50={percentile(values, 50):.1f}ms "
        f"p95={percentile(values, 95):.1f}ms p99={percentile(values, 99):.1f}ms "
        f"max={max(values):.1f}ms"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Product:
    def __init__(
        self,
        *,
        first_token_delay: float,
        chunk_delay: float = 0.0,
    ):
        self.first_token_delay, self.chunk_delay = first_token_delay, chunk_delay
        self.processes: list[subprocess.Popen] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A name of this run's own, told apart from any other worker on the broker.
        self.worker_name = f"bench-{os.getpid()}@{socket.gethostname()}"

    def __enter__(self) -> Product:
        self._configure_environment()
        self._start_fakes()
        try:
            self._start_product()
        except BaseException:
            self.__exit__()
            raise
        # The fakes, and most benchmarks' clients, are threads of this process: a full
        # collection of what it loaded (Django among it) stopped them all for 65-83 ms
        # now and then, which counted in the product's figures (common/collector.py).
        freeze_start_up()
        return self

    def _start_product(self) -> None:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)
        import django

        django.setup()
        self._drop_leftover_tasks()
        self._spawn("gunicorn", "-b", f"127.0.0.1:{self.port}")
        self._spawn("celery", "-A", "assistant", "worker", "-l", "WARNING", "-n", self.worker_name)
        self._wait_until_up()
        self.check_ours()

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            # The main process only: it stops its own children after their current work
            # (a TERM to Celery's children loses and requeues the task they are running).
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.ollama.stop()
        self.platforms.stop()

    def _configure_environment(self) -> None:
        env = os.environ
        env.setdefault("VAR_DIR", str(ROOT / "var" / "bench"))
        bench_secrets()
        env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
        env["LOG_LEVEL"] = "WARNING"
        if env.get("DATABASE_URL", "").startswith("postgres"):
            # BENCH_DATABASE: another name, so that benchmarks run side by side.
            scratch = env.get("BENCH_DATABASE", "assistant_bench")
            env["DATABASE_URL"] = scratch_postgres(env["DATABASE_URL"], scratch)
        Path(env["VAR_DIR"]).mkdir(parents=True, exist_ok=True)
        db_file = Path(env["VAR_DIR"]) / "db.sqlite3"
        if "DATABASE_URL" not in env and db_file.exists():
            db_file.unlink()  # a fresh embedded database every run

    def _start_fakes(self) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.fakes.ollama import FakeOllama
        from tests.fakes.platforms import FakePlatforms

        self.ollama = FakeOllama().start()
        self.ollama.first_token_delay = self.first_token_delay
        self.ollama.chunk_delay = self.chunk_delay
        self.platforms = FakePlatforms().start()
        for name in (
            "WECOM_API_BASE",
            "DINGTALK_API_BASE",
            "DINGTALK_OAPI_BASE",
            "FEISHU_API_BASE",
        ):
            os.environ[name] = self.platforms.url
        os.environ["OLLAMA_URL"] = self.ollama.url

    def _spawn(self, *command: str) -> None:
        log = (Path(os.environ["VAR_DIR"]) / f"{command[0]}.log").open("w")
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", *command],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def web_cpu_seconds(self) -> float:
        """CPU seconds (user + system) spent so far by the web processes: gunicorn's
        master and its workers, read from /proc (Linux)."""
        return cpu.tree_seconds(cpu.processes(), self.processes[0].pid)

    def worker_cpu_seconds(self) -> float:
        """`web_cpu_seconds` of the Celery worker: its main process (the dispatcher among
        its threads) and its pool's children."""
        return cpu.tree_seconds(cpu.processes(), self.processes[1].pid)

    def check_ours(self) -> None:
        """Raise RuntimeError unless what answers is what this harness started: its
        processes still run, the socket listening on its port is its gunicorn's (not a
        server left over from an earlier run, which `_wait_until_up` would take for
        ours), and the only Celery worker on the broker is its own (a leftover one would
        take tasks against another database)."""
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[2]} exited ({process.returncode}); see its log")
        listeners = listening_sockets(self.port)
        if not listeners or not listeners <= open_sockets(self.processes[0].pid):
            raise RuntimeError(f"port {self.port} is not (only) this run's gunicorn's")
        refuse_other_workers(set(self._workers_on_broker()) - {self.worker_name})

    def _drop_leftover_tasks(self) -> None:
        """Empty the product's queues on the broker before its worker starts. An earlier
        run leaves tasks there (questions a slow model never got to, wake-ups not due
        yet, what its worker gave back as it stopped); they name rows of that run's
        scratch database, whose ids this run's rows take again, so its worker would
        claim this run's questions out of their turn. Refused while any worker consumes
        the broker: its queues are then someone's work."""
        from assistant.celery import app

        refuse_other_workers(set(workers_on_broker()))
        app.control.purge()

    def _workers_on_broker(self) -> list[str]:
        """The names of the workers answering a ping on the broker, once ours does."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.worker_name in (names := workers_on_broker()):
                return names
        raise RuntimeError("the Celery worker did not come up; see var/bench/celery.log")

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not come up; see var/bench/gunicorn.log")

    @contextmanager
    def questions_held(self) -> Iterator[None]:
        """Meanwhile the worker takes no question from the broker (Celery's
        cancel_consumer on the new questions' queue); its dispatcher still publishes."""
        from django.conf import settings

        from assistant.celery import app

        queue, worker = settings.CELERY_TASK_DEFAULT_QUEUE, [self.worker_name]
        if not app.control.cancel_consumer(queue, destination=worker, reply=True):
            raise RuntimeError("the worker did not stop taking questions from the broker")
        try:
            yield
        finally:
            app.control.add_consumer(queue, destination=worker, reply=True)

    def make_bot(self, platform: str, **tenant_fields: object):  # noqa: ANN201 - a Bot
        """The bench tenant's bot on `platform`; `tenant_fields` set more of the tenant's
        fields (e.g. max_concurrency)."""
        from channels_im.models import Bot
        from tenants.models import Tenant

        tenant, _ = Tenant.objects.update_or_create(
            slug="bench",
            defaults={
                "name": "Bench",
                "model_endpoint": self.ollama.url,
                # Limits on (so their cost is measured) but too high to refuse anything.
                "rate_limit_per_minute": 10**6,
                "user_rate_limit_per_minute": 10**6,
                **tenant_fields,
            },
        )
        bot, _ = Bot.objects.update_or_create(
            tenant=tenant,
            name=f"bench-{platform}",
            defaults={"platform": platform, "credentials": CREDENTIALS[platform]},
        )
        return bot

    def served(self, text: str, timeout: float = 30.0):  # noqa: ANN201 - a fakes Served
        """The fake model's timings for the question `text` (recorded when its stream ends)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for served in list(self.ollama.served):
                if served.body["messages"][-1]["content"] == text:
                    return served
            time.sleep(0.01)
        raise LookupError(text)

    def prepare(self, request: dict) -> requests.PreparedRequest:
        """Keyword arguments built for Django's test client, as an HTTP request. Benchmarks
        prepare before starting the clock: composing a request is the platform's time."""
        headers = {"Content-Type": request.get("content_type", "application/json")}
        headers.update(request.get("headers") or {})
        for key, value in request.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").title()] = value
        return requests.Request(
            request["method"],
            self.url + request["path"],
            data=request.get("data", b""),
            headers=headers,
        ).prepare()

    def encode(self, request: dict) -> bytes:
        """`prepare`'s request as written to the socket, for bench/loadgen.py."""
        prepared = self.prepare(request)
        body = prepared.body or b""
        headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
        return loadgen.encode(
            str(prepared.method),
            prepared.path_url,
            f"127.0.0.1:{self.port}",
            headers,
            body.encode() if isinstance(body, str) else body,
        )

    def send(
        self, session: requests.Session, request: dict | requests.PreparedRequest
    ) -> requests.Response:
        if isinstance(request, dict):
            request = self.prepare(request)
        return session.send(request, timeout=30)


def workers_on_broker() -> list[str]:
    """The names of the Celery workers that answer a ping on the broker within a second."""
    from assistant.celery import app

    return [name for reply in app.control.ping(timeout=1.0) for name in reply]


def refuse_other_workers(names: set[str]) -> None:
    """Raise RuntimeError if any worker but this run's consumes the broker: it would take
    this run's tasks against another database, and its queues are someone's work."""
    if names:
        raise RuntimeError(f"other Celery workers consume this broker: {sorted(names)}")


def listening_sockets(port: int) -> set[int]:
    """The inodes of the TCP sockets listening on `port` on 127.0.0.1 (/proc/net/tcp)."""
    local = f"0100007F:{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(int(fields[9]))
    return inodes


def open_sockets(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def scratch_postgres(url: str, name: str) -> str:
    """A fresh database beside the one named in `url`, so the bench never touches real data."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))
