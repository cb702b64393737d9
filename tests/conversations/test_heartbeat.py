"""A worker's beat: the cache entries /readyz reads, and the file a liveness check reads
(IM_WORKER_HEARTBEAT_FILE)."""

import os
import time

import pytest

from conversations.heartbeat import Heartbeat, unconsumed


def beat(*queues: str) -> None:
    """One beat of the step as a worker consuming `queues` runs it."""
    step = Heartbeat(worker=None)
    step.queues = list(queues)
    step.beat()


def age(path) -> float:
    return time.time() - os.stat(path).st_mtime


def test_a_beat_marks_its_queues_consumed_and_touches_the_file(settings, tmp_path):
    settings.IM_WORKER_HEARTBEAT_FILE = str(tmp_path / "alive")
    beat("inference")
    assert "inference" not in unconsumed(["inference"])
    assert age(tmp_path / "alive") < 5


def test_the_file_is_touched_while_the_cache_is_down(settings, tmp_path):
    """The liveness check asks whether this worker's loop runs: a cache outage is no reason
    to restart every worker."""
    settings.CACHES = {
        "default": {
            "BACKEND": "common.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
        }
    }
    alive = tmp_path / "alive"
    alive.touch()
    os.utime(alive, (0, 0))  # a beat from 1970
    settings.IM_WORKER_HEARTBEAT_FILE = str(alive)
    beat("inference")
    assert age(alive) < 5


def test_without_the_setting_no_file_is_written(settings, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings.IM_WORKER_HEARTBEAT_FILE = ""
    beat("inference")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_cannot_be_written_is_an_error(settings, tmp_path):
    """Raised to the worker's timer, which logs it at every beat: a liveness check that can
    never pass must say why."""
    settings.IM_WORKER_HEARTBEAT_FILE = str(tmp_path / "missing-directory" / "alive")
    with pytest.raises(FileNotFoundError):
        beat("inference")
