import itertools
import os

import pytest

from tests.e2e.worker import Worker, database_url

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
