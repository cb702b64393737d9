import os

import pytest

from tests.e2e.worker import Worker, database_url


@pytest.fixture
def worker(transactional_db, fake_platforms, fake_ollama):
    from assistant.celery import app

    app.control.purge()  # messages left by an earlier run point at rows that are gone
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        WECOM_API_BASE=fake_platforms.url,
        DINGTALK_API_BASE=fake_platforms.url,
        DINGTALK_OAPI_BASE=fake_platforms.url,
        FEISHU_API_BASE=fake_platforms.url,
        OLLAMA_URL=fake_ollama.url,
    )
    process = Worker(env)
    process.start()
    yield process
    process.stop()
