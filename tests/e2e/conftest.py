import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.e2e.worker import ROOT, Worker, database_url, free_port, wait_for

WORKER_NUMBERS = itertools.count(1)  # one log file per worker of a test run


@pytest.fixture
def spawn_worker(transactional_db, fake_platforms, fake_ollama):
    """Start real worker processes (extra settings as keyword arguments); all stopped after."""
    from assistant.celery import app

    app.control.purge()  # messages left by an earlier run point at rows that are gone
    base_env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        WECOM_API_BASE=fake_platforms.url,
        DINGTALK_API_BASE=fake_platforms.url,
        DINGTALK_OAPI_BASE=fake_platforms.url,
        FEISHU_API_BASE=fake_platforms.url,
        OLLAMA_URL=fake_ollama.url,
    )
    workers: list[Worker] = []

    def spawn(queues: str | None = None, **settings: str) -> Worker:
        name = f"worker-{next(WORKER_NUMBERS)}"
        process = Worker(dict(base_env, **settings), name=name, queues=queues)
        process.start()
        workers.append(process)
        return process

    yield spawn
    for process in workers:
        process.stop()


@pytest.fixture
def worker(spawn_worker):
    return spawn_worker()


@pytest.fixture
def shared_cache(settings, tmp_path):
    """A cache this process, the worker and the web process all see (the tests' default is
    per process)."""
    location = tmp_path / "cache"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(location),
        }
    }
    return f"file://{location}"


@pytest.fixture
def spawn_web(transactional_db, tmp_path):
    """Start the web process as production does (`gunicorn -b HOST:PORT` from the
    repository root, extra settings as keyword arguments); returns (url, port, log path).
    Stopped after the test."""
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(**settings: str) -> tuple[str, int, Path]:
        port = free_port()
        log = tmp_path / f"gunicorn-{port}.log"
        env = dict(os.environ, DATABASE_URL=database_url(), **settings)
        env.pop("WEB_CONCURRENCY", None)
        with log.open("w") as stderr:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), timeout=20)
        return url, port, log

    yield spawn
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # clients still connected delay a graceful stop
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).ok
    except requests.RequestException:
        return False
