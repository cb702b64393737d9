"""The stop signal: how a /stop (or a recalled question) reaches the worker that holds the
answer, on whatever machine, within a second.

The web process sets a key per question in the shared cache (`request`); the worker
answering that question polls the key every POLL_SECONDS while the model writes
(`Watch`: one thread per process polls for every answer in it), and closes the model
request when it appears
(`common.hangup`), also during a long wait for the first token. The cache because every
process of an installation already shares it (Redis in production; files in the
embedded default, where the web and the worker share a machine) and a poll is one GET
that touches nothing else. A flag on the row would need a database connection per
watching thread and a query every 200 ms per answer on the database that carries every
message; Redis pub/sub has no counterpart in the file cache.

The key outlives any answer (IM_ANSWER_BUDGET_SECONDS), so a question stopped while it
waits in the queue is stopped before its model call when a worker takes it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType

from django.conf import settings
from django.core.cache import cache, caches

from common.hangup import Hangup

from .models import Message

logger = logging.getLogger(__name__)

# How often a worker looks for a stop while the model writes: a stop takes effect within it.
POLL_SECONDS = 0.2
# What stopped the answer (the key's value).
COMMAND, RECALL = "command", "recall"


def request(question_id: int, how: str) -> None:
    """Ask the worker answering this question (now or later) to stop it; `how` is
    COMMAND or RECALL. A cache outage is logged, not raised: the callback is still
    answered, and a question still queued is stopped all the same (stops.py)."""
    try:
        cache.set(_key(question_id), how, settings.IM_ANSWER_BUDGET_SECONDS + 60)
    except Exception:
        logger.exception("the cache is down: the stop of message %s reaches no worker", question_id)


def silent(question: Message, text: str, how: str | None) -> bool:
    """Whether a stopped answer goes unsent: a recalled question whose answer shows
    nothing yet. Its message is gone from the chat, so there is nothing to answer or
    finish, unless the platform shows a placeholder for every message."""
    shown = bool(text.strip()) or "live" in question.reply_context
    return how == RECALL and not shown and not question.bot.adapter.answers_every_message


def _key(question_id: int) -> str:
    return f"im:stop:{question_id}"


class Watch:
    """Around one model call for question `question_id`: `hangup` is called as soon as
    the question's stop is requested, and `how` then says what stopped it.

    A stop requested before the call (the question was stopped while queued) is seen on
    entering, so the model is not asked at all. A cache that cannot be read stops
    nothing; the answer goes on.
    """

    def __init__(self, question_id: int):
        self.question_id = question_id
        self.hangup = Hangup()
        self.how: str | None = None
        self._warned = False
        # This thread's cache object, used by the polling thread too: its Redis
        # connection pool is thread-safe (the file and locmem caches are too).
        self._cache = caches["default"]

    def __enter__(self) -> Watch:
        if not self.poll():
            _poller.add(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # A poll in flight is not waited for: a hangup after the call is over closes
        # nothing.
        _poller.remove(self)

    def poll(self) -> bool:
        """Whether the question was stopped; its hangup is called if so."""
        try:
            how = self._cache.get(_key(self.question_id))
        except Exception:  # noqa: BLE001 - any cache backend's failure
            if not self._warned:
                logger.warning(
                    "message %s: the cache is down; no /stop reaches it", self.question_id
                )
                self._warned = True
            return False
        if how is None:
            return False
        self.how = how
        self.hangup()
        return True


class _Poller:
    """The thread that polls, every POLL_SECONDS, for the stops of this process's
    watches; started with the first watch. One per process, not one per answer:
    starting a thread waits until it runs, milliseconds on a busy machine, and the
    answer waited for it."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._watches: set[Watch] = set()
        self._thread: threading.Thread | None = None

    def add(self, watch: Watch) -> None:
        with self._changed:
            self._watches.add(watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="stop-watch", daemon=True)
                self._thread.start()
            self._changed.notify()

    def remove(self, watch: Watch) -> None:
        with self._changed:
            self._watches.discard(watch)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._watches)
            time.sleep(POLL_SECONDS)
            with self._changed:
                watching = list(self._watches)
            for watch in watching:
                try:
                    stopped = watch.poll()
                except Exception:  # a bug here must not end the polling of every answer
                    logger.exception("message %s: could not look for its stop", watch.question_id)
                    continue
                if stopped:
                    self.remove(watch)


_poller = _Poller()


def _new_poller() -> None:
    global _poller
    _poller = _Poller()


# A forked child (Celery's pool) has none of its parent's threads: a poller of its own.
os.register_at_fork(after_in_child=_new_poller)
