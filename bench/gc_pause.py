"""How long a full garbage collection stops a web or worker process, with what was loaded
at start-up frozen (assistant/asgi.py, assistant/celery.py: gc.freeze) and without.

A full collection holds the interpreter's lock: every request (or task) of the process
waits it out. Loads each process's application as it starts (the web's ASGI module; the
worker's Celery app and task modules), then times full collections with the start-up
objects left to the collector, and frozen, alternating, and prints the medians. Needs no
database.

    python bench/gc_pause.py
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import bench_secrets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--target-ms", type=float, default=1.0, help="frozen, at most this long")
    args = parser.parse_args()
    bench_secrets()
    import assistant.asgi  # noqa: F401 - the web process's application
    from assistant.celery import app

    app.loader.import_default_modules()  # the worker's task modules
    pauses: dict[str, list[float]] = {"left to the collector": [], "frozen": []}
    for _ in range(args.repeat):
        for way, spent in pauses.items():
            if way == "frozen":
                gc.freeze()
            else:
                gc.unfreeze()
            started = time.perf_counter()
            gc.collect()
            spent.append((time.perf_counter() - started) * 1000)
    medians = {way: statistics.median(spent) for way, spent in pauses.items()}
    for way, median in medians.items():
        print(f"a full collection, start-up objects {way}: {median:.3f} ms")
    met = medians["frozen"] <= args.target_ms
    print(
        f"{gc.get_freeze_count()} objects frozen; frozen, the pause is at most "
        f"{args.target_ms:g} ms: {'OK' if met else 'MISSED'}"
    )
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
    main()
