"""How long a full garbage collection stops a web or a worker process, as each freezes
what it loaded at start-up (common/collector.py), and without that freeze.

A full collection holds the interpreter's lock: every request (or task) of the process
waits it out. Each kind of process is loaded in an interpreter of its own, as it starts
and through its own hook: the web's application and gunicorn's `post_worker_init`
(gunicorn.conf.py); the worker's Celery app, its task modules and `worker_ready`
(assistant/celery.py). Full collections are timed with the start-up frozen by that hook,
then unfrozen, alternating; the medians are printed. Exits non-zero when a frozen
process still pauses over --target-ms (its hook froze nothing, or not enough). Needs no
database.

    python bench/gc_pause.py
"""

from __future__ import annotations

import argparse
import gc
import json
import runpy
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import bench_secrets  # noqa: E402

PROCESSES = ("web", "worker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="collections timed each way")
    parser.add_argument("--target-ms", type=float, default=1.0, help="frozen, at most this long")
    parser.add_argument("--process", choices=PROCESSES, help="measure this one, here")
    args = parser.parse_args()
    bench_secrets()
    if args.process:
        print(json.dumps(measure(args.process, args.repeat)))
        return
    met = True
    for process in PROCESSES:
        measured = subprocess.run(
            [sys.executable, __file__, "--process", process, "--repeat", str(args.repeat)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(measured.stdout.splitlines()[-1])
        ok = figures["frozen"] <= args.target_ms
        met &= ok
        print(
            f"{process:6s} {figures['objects']} objects frozen at start-up; a full collection "
            f"{figures['frozen']:.3f} ms, {figures['unfrozen']:.2f} ms without the freeze "
            f"(target <= {args.target_ms:g} ms frozen) {'OK' if ok else 'MISSED'}"
        )
    sys.exit(0 if met else 1)


def measure(process: str, repeat: int) -> dict[str, float]:
    """Start as `process` does, then the median milliseconds of a full collection with
    its start-up frozen and unfrozen, and how many objects its hook froze."""
    if process == "web":
        import assistant.asgi  # noqa: F401 - what gunicorn loads

        runpy.run_path(str(ROOT / "gunicorn.conf.py"))["post_worker_init"](None)
    else:
        from celery.signals import worker_ready

        from assistant.celery import app

        app.loader.import_default_modules()
        worker_ready.send(sender=None)
    objects = gc.get_freeze_count()
    pauses: dict[str, list[float]] = {"frozen": [], "unfrozen": []}
    for _ in range(repeat):
        for way, spent in pauses.items():
            if way == "frozen":
                gc.freeze()
            else:
                gc.unfreeze()
            started = time.perf_counter()
            gc.collect()
            spent.append((time.perf_counter() - started) * 1000)
    return {"objects": objects, **{way: statistics.median(s) for way, s in pauses.items()}}


if __name__ == "__main__":
    main()
