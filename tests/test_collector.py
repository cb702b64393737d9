"""What the web and worker processes load at start-up is kept out of the garbage
collector's full collections (common/collector.py): walking it held the interpreter's
lock for tens of milliseconds while every request or task of the process waited
(bench/gc_pause.py)."""

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery.signals import worker_process_init, worker_ready

import assistant.celery  # noqa: F401 - connects the worker's receivers

ROOT = Path(__file__).resolve().parents[1]

# What a gunicorn worker does: load the application, then its post_worker_init hook.
A_WEB_PROCESS = """
import gc, runpy
import assistant.asgi
from django.urls.resolvers import _get_cached_resolver
hook = runpy.run_path("gunicorn.conf.py")["post_worker_init"]
print(gc.get_freeze_count(), _get_cached_resolver.cache_info().currsize)
hook(None)
print(gc.get_freeze_count(), _get_cached_resolver.cache_info().currsize)
"""


def test_a_web_process_loads_its_urls_then_freezes_what_it_loaded():
    started = subprocess.run(
        [sys.executable, "-c", A_WEB_PROCESS],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "assistant.settings"},
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stderr
    frozen_before, urls_before, frozen_after, urls_after = map(int, started.stdout.split()[-4:])
    assert (frozen_before, urls_before) == (0, 0)
    assert frozen_after > 10_000
    assert urls_after == 1  # the URLconf, loaded before the freeze


@pytest.mark.parametrize(
    "up", [worker_ready, worker_process_init], ids=["main process", "pool child"]
)
def test_a_worker_process_freezes_what_it_loaded_once_up(up):
    gc.unfreeze()
    try:
        up.send(sender=None)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
