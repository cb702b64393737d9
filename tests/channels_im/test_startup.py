"""Every platform module is imported as a process starts, in the one thread that starts
it: a web process's first callbacks run side by side in threads, and two threads importing
platform packages that share a module (WeCom's envelope) deadlock in Python's import locks
(seen as 500s on a fresh web process's first callbacks)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a fresh process has imported of the platform packages once Django has started.
LEFT_FOR_LATER = """
import sys, django
django.setup()
from channels_im.platforms import PLATFORMS
print(sorted(p for p in PLATFORMS.values() if p.rsplit(".", 1)[0] not in sys.modules))
"""


def test_every_platform_module_is_imported_before_the_first_request():
    started = subprocess.run(
        [sys.executable, "-c", LEFT_FOR_LATER],
        cwd=ROOT,
        env=dict(os.environ, DJANGO_SETTINGS_MODULE="assistant.settings"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "[]"
