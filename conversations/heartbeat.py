"""Worker heartbeats: every running worker writes, every few seconds, one cache entry per
queue it consumes, which expires on its own once the worker stops writing; `/readyz`
reads them. A broadcast to the workers would take a second or more to answer.

With IM_WORKER_HEARTBEAT_FILE set, each beat also touches that file: the cache entries
are per queue, shared by every worker, so they cannot tell an orchestrator whether this
one worker is alive; the file's age can, read by a shell in a few milliseconds
(deploy/worker.yaml's liveness probe)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from celery import bootsteps
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

# An entry outlives the interval twice over: one late beat on a busy event loop is not death.
_MISSED_BEATS = 3


def _key(queue: str) -> str:
    return f"worker-heartbeat:{queue}"


def unconsumed(queues: list[str]) -> list[str]:
    """The queues among `queues` that no worker has beaten for in the last few intervals."""
    found = cache.get_many([_key(queue) for queue in queues])
    return [queue for queue in queues if _key(queue) not in found]


class Heartbeat(bootsteps.StartStopStep):
    """A worker step: beats on the worker's own timer (its event loop), so a worker whose
    loop is stuck stops beating too."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None
        self.queues: list[str] = []

    def start(self, worker: Any) -> None:
        # consume_from: the queues of -Q, else every declared queue.
        self.queues = sorted(worker.app.amqp.queues.consume_from)
        interval = settings.IM_WORKER_HEARTBEAT_SECONDS
        self.beat()
        self.tref = worker.timer.call_repeatedly(interval, self.beat, priority=10)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def beat(self) -> None:
        expires = settings.IM_WORKER_HEARTBEAT_SECONDS * _MISSED_BEATS
        try:
            cache.set_many({_key(queue): time.time() for queue in self.queues}, expires)
        except Exception:
            # The cache being down must not stop the worker; /readyz reports the cache.
            logger.warning("could not write the worker heartbeat", exc_info=True)
        if settings.IM_WORKER_HEARTBEAT_FILE:
            # Not caught: a file that cannot be written is a mistake in the deployment, and
            # the worker's timer logs the error at every beat until it is fixed.
            Path(settings.IM_WORKER_HEARTBEAT_FILE).touch()
