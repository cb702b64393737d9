"""The garbage collector in our long-lived processes (the web's, the worker's main
process and its pool children).

What a process loads as it starts (Django, every app's modules, the URLconf: over
100,000 objects) lives as long as the process. Left to the collector, each full
collection walks all of it, holding the interpreter's lock while every request or task
of the process waits; frozen (gc.freeze), a full collection walks only what came after.
bench/gc_pause.py measures both, in each kind of process.
"""

import gc


def freeze_start_up(*, collect: bool = True) -> None:
    """Move every object alive now out of the collector's way, for good. With `collect`,
    collect first, so that start-up's garbage is freed rather than frozen; not in a
    child just forked, whose collection would write to each object it shares with its
    parent, and so copy their pages."""
    if collect:
        gc.collect()
    gc.freeze()
