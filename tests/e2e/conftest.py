import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.worker import ROOT, Beat, Worker, database_url, free_port, wait_for

PROCESS_NUMBERS = itertools.count(1)  # one log file per worker or beat of a test run


@pytest.fixture
def celery_env(transactional_db, fake_platforms, fake_ollama) -> dict[str, str]:
    """The environment of this test's worker and beat processes: its database, the fakes."""
    from assistant.celery import app

    app.control.purge()  # messages left by an earlier run point at rows that are gone
    return dict(
        os.environ,
        DATABASE_URL=database_url(),
        WECOM_API_BASE=fake_platforms.url,
        DINGTALK_API_BASE=fake_platforms.url,
        DINGTALK_OAPI_BASE=fake_platforms.url,
        FEISHU_API_BASE=fake_platforms.url,
        OLLAMA_URL=fake_ollama.url,
    )


@pytest.fixture
def spawn_worker(celery_env):
    """Start real worker processes (extra settings as keyword arguments); all stopped after."""

    def make(queues: str | None = None, **settings: str) -> Worker:
        name = f"worker-{next(PROCESS_NUMBERS)}"
        return Worker(dict(celery_env, **settings), name=name, queues=queues)

    yield from _started(make)


@pytest.fixture
def spawn_beat(celery_env):
    """Start real beat processes (extra settings as keyword arguments); all stopped after."""

    def make(**settings: str) -> Beat:
        return Beat(dict(celery_env, **settings), name=f"beat-{next(PROCESS_NUMBERS)}")

    yield from _started(make)


def _started(make: Callable[..., Worker]) -> Iterator[Callable[..., Worker]]:
    """A fixture's `spawn`: each process `make` returns, started; all stopped at the end."""
    processes: list[Worker] = []

    def spawn(*args: Any, **settings: str) -> Worker:
        process = make(*args, **settings)
        process.start()
        processes.append(process)
        return process

    yield spawn
    with ThreadPoolExecutor() as pool:  # side by side: each takes seconds to shut down
        list(pool.map(Worker.stop, processes))


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
                    start_new_session=True,  # its own process group, as on its own machine
                )
            )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), timeout=60)  # slow when many processes start at once
        return url, port, log

    yield spawn
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # clients still connected delay a graceful stop
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).ok
    except requests.RequestException:
        return False
