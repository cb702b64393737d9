"""How a stored question's task reaches the broker.

Publishing a Celery task cost a callback more of the web process's CPU than anything else
it does (1.4 of 4.8 ms, issue 14's profile). On PostgreSQL the callback only commits its
row: a trigger on the message table (`Message.Meta.triggers`) sends NOTIFY on
`CHANNEL` with a new question's id once the INSERT commits, and one worker process, the
dispatcher, LISTENs and publishes the question's task.

Every worker's main process runs a candidate (`Dispatcher`, a worker step); a
session-level advisory lock elects one. When the elected process or its connection
dies, the lock goes with its session and a standby takes over within
`STANDBY_SECONDS`, first enqueueing every question still claimable: what arrived while
no one listened. A task sent twice is harmless (a claim is a conditional UPDATE), and
the sweep (`claims.stuck`) stays the net under all of it.

On other databases (the embedded SQLite) the request publishes the task once its row
commits, as before; so does a process that sets `IM_DISPATCH=publish`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from celery import bootsteps
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

CHANNEL = "im_question"
# pg_try_advisory_lock's key: any constant no other code of this database uses.
_LOCK_KEY = 0x494D_4450  # "IMDP"
# How often a standby asks for the lock; questions wait at most this long on a handover.
STANDBY_SECONDS = 2.0
# How long one wait for notifications lasts before looking whether to stop.
_WAIT_SECONDS = 1.0
# The most questions enqueued at a takeover; the sweep finds any beyond.
_CATCH_UP_LIMIT = 500


def by_notify() -> bool:
    """Whether the database wakes the dispatcher (True), or the request publishes."""
    return connection.vendor == "postgresql" and settings.IM_DISPATCH == "notify"


def question_stored(message_id: int) -> None:
    """A question's row was written (inside the caller's transaction, if any): see that
    its task is sent once the row commits."""
    if not by_notify():  # else the trigger's NOTIFY, sent at commit, wakes the dispatcher
        transaction.on_commit(lambda: _enqueue(message_id))


class Dispatcher(bootsteps.StartStopStep):
    """A worker step: a thread of the worker's main process that, once elected, publishes
    the task of each question the database announces. Idle where `by_notify` is False."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.stopping = threading.Event()
        self.listening = threading.Event()  # elected, caught up, and waiting for news
        self.thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        if not by_notify():
            return
        self.stopping.clear()
        self.thread = threading.Thread(target=self.run, name="dispatcher", daemon=True)
        self.thread.start()

    def stop(self, worker: Any) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=_WAIT_SECONDS * 3)
            self.thread = None

    def run(self) -> None:
        """Stand by, dispatch while elected, and start over after any failure (the
        database restarting, the connection cut) until the worker stops."""
        while not self.stopping.is_set():
            try:
                with _own_connection() as listener:
                    if self._elected(listener):
                        self._dispatch(listener)
            except Exception:
                logger.warning("question dispatcher failed; retrying", exc_info=True)
                self.stopping.wait(STANDBY_SECONDS)
            finally:
                self.listening.clear()

    def _elected(self, listener: psycopg.Connection) -> bool:
        """Wait for the lock; False if the worker stops first."""
        while not self.stopping.is_set():
            row = listener.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY]).fetchone()
            if row and row[0]:
                return True
            self.stopping.wait(STANDBY_SECONDS)
        return False

    def _dispatch(self, listener: psycopg.Connection) -> None:
        listener.execute(f"LISTEN {CHANNEL}")
        _check_echo(listener)
        logger.info("this worker dispatches questions")
        with _producer() as producer:
            for message_id in _unclaimed_questions():
                _enqueue(message_id, producer)
            self.listening.set()
            while not self.stopping.is_set():
                for notice in listener.notifies(timeout=_WAIT_SECONDS):
                    if notice.payload:  # not the echo of _check_echo
                        _enqueue(int(notice.payload), producer)


def _check_echo(listener: psycopg.Connection) -> None:
    """Say so, loudly, when this connection does not hear its own NOTIFY: a proxy that
    pools connections by transaction (PgBouncer's default) delivers none, and every
    question would then wait for the sweep."""
    listener.execute("SELECT pg_notify(%s, '')", [CHANNEL])
    if not any(True for _ in listener.notifies(timeout=STANDBY_SECONDS, stop_after=1)):
        logger.error(
            "LISTEN/NOTIFY does not reach this worker (a transaction-pooling proxy in "
            "front of PostgreSQL?): questions wait for the sweep; set IM_DISPATCH=publish"
        )


@contextmanager
def _own_connection() -> Iterator[psycopg.Connection]:
    """A connection of its own (Django's are per thread and come and go), with TCP
    keepalives, so that a peer gone without a word is noticed and its lock freed."""
    params = connections["default"].get_connection_params()
    with psycopg.connect(
        **params,
        autocommit=True,
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    ) as listener:
        yield listener


# Imported when used: the Celery app loads this module (for `Dispatcher`) before
# Django's models are ready.
def _producer() -> AbstractContextManager[Any]:
    from . import tasks

    return tasks.producer()


def _enqueue(message_id: int, producer: Any = None) -> None:
    from . import tasks
    from .models import Message

    tasks.enqueue(message_id, Message.Role.USER, producer=producer)


def _unclaimed_questions() -> list[int]:
    """Questions nobody owns now, oldest first: what arrived while no dispatcher listened."""
    from .claims import claimable
    from .models import Message

    try:
        return list(
            Message.objects.filter(claimable(timezone.now()), role=Message.Role.USER)
            .order_by("id")
            .values_list("id", flat=True)[:_CATCH_UP_LIMIT]
        )
    finally:
        connection.close()  # this thread's own; it asks nothing more of Django's
