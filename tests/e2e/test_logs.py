"""Worker and beat, started as in production, log in the one format (common/logs.py)."""

import os
import subprocess
import sys

import pytest

from conversations.tasks import sweep_stuck_messages
from tests.e2e.logs import assert_one_format
from tests.e2e.worker import ROOT, wait_for

pytestmark = pytest.mark.e2e

if os.geteuid() == 0:
    # Celery warns on stderr before any logging is set up when started as root (tests in
    # containers); production images run it as a user.
    os.environ.setdefault("PYTHONWARNINGS", "ignore:You're running the worker with superuser")


def test_it_logs_a_task_in_the_one_format_without_kombu_noise(spawn_worker):
    worker = spawn_worker()
    sweep_stuck_messages.delay()
    sweep_stuck_messages.delay()
    wait_for(lambda: worker.output().count("succeeded") == 2, worker=worker)

    records = assert_one_format(worker.output())
    assert any("celery@" in record and "ready" in record for record in records)
    assert "No hostname was supplied" not in worker.output()


def test_beat_logs_in_the_one_format(tmp_path):
    log = tmp_path / "beat.log"
    env = dict(os.environ, IM_SWEEP_INTERVAL_SECONDS="5")  # the shortest allowed
    with log.open("w") as stderr:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "assistant", "beat", "-l", "INFO"]
            + ["-s", str(tmp_path / "schedule")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            wait_for(lambda: "Sending due task" in log.read_text(), timeout=20)
        finally:
            beat.terminate()
            beat.wait(timeout=10)

    assert_one_format(log.read_text())
    assert "No hostname was supplied" not in log.read_text()
