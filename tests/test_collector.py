"""What the web and worker processes load at start-up is kept out of the garbage
collector's full collections (gc.freeze): walking it held the interpreter's lock for
50-110 ms while every request or task of the process waited (bench/gc_pause.py)."""

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery.signals import worker_process_init, worker_ready

import assistant.celery  # noqa: F401 - connects the worker's receivers

ROOT = Path(__file__).resolve().parents[1]


def test_the_web_application_freezes_what_it_loaded():
    loaded = subprocess.run(
        [sys.executable, "-c", "import gc, assistant.asgi; print(gc.get_freeze_count())"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "assistant.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(loaded.stdout.split()[-1]) > 10_000


@pytest.mark.parametrize("up", [worker_ready, worker_process_init], ids=["main", "pool child"])
def test_a_worker_process_freezes_what_it_loaded_once_up(up):
    gc.unfreeze()
    try:
        up.send(sender=None)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
