"""Watching questions for their answers on the web process's event loop, holding no thread.

A client that waits (`wait` > 0) or streams may hold its connection for minutes; under
the ASGI server (`common/webserver.py`) it costs a coroutine, not one of the threads the
platforms' callbacks need. Each event loop (one per web process) has one `Watch`: every
POLL_SECONDS it reads the status of every watched question in one query, and the text so
far of the unanswered ones in one cache read, and hands each watcher what it saw. Fifty
waiting clients cost the same two reads as one.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from django.core.cache import cache
from django.db import DatabaseError, connection

from channels_im.platforms.api.adapter import live_key
from common.api import in_a_thread
from common.asgi import slot_released

from ..models import Message
from .serializers import FINAL

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Seen:
    """A question as one poll saw it: its status, and the answer's text so far ("" once
    final: the reply row holds it then)."""

    status: str
    text: str

    @property
    def final(self) -> bool:
        return self.status in FINAL


def look(pks: list[int]) -> dict[int, Seen]:
    """One poll: {question pk: Seen} for the questions of `pks` that exist."""
    statuses = dict(Message.objects.filter(pk__in=pks).values_list("pk", "status"))
    writing = [pk for pk, status in statuses.items() if status not in FINAL]
    texts = cache.get_many([live_key(f"q{pk}") for pk in writing]) if writing else {}
    return {
        pk: Seen(status, texts.get(live_key(f"q{pk}"), "") if status not in FINAL else "")
        for pk, status in statuses.items()
    }


def _look_or_nothing(pks: list[int]) -> dict[int, Seen]:
    try:
        return look(pks)
    except DatabaseError as exc:  # the next poll tries again; a broken connection goes
        logger.warning("watching %d questions: the database failed: %s", len(pks), exc)
        connection.close_if_unusable_or_obsolete()
    except Exception:  # the cache, or anything else: the poll must go on for the others
        logger.exception("watching %d questions failed", len(pks))
    return {}


class Latest:
    """The newest `Seen` of one watcher: a client that reads slowly skips what it missed
    instead of piling it up."""

    def __init__(self) -> None:
        self.seen: Seen | None = None
        self.arrived = asyncio.Event()

    def put(self, seen: Seen) -> None:
        self.seen = seen
        self.arrived.set()

    async def next_before(self, deadline: float) -> Seen:
        """The next `Seen` to arrive (or one that arrived unread); TimeoutError once
        `time.monotonic()` passes `deadline`."""
        await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())
        self.arrived.clear()
        assert self.seen is not None
        return self.seen


class Watch:
    """The watched questions of one event loop and the task that polls them while any is
    watched."""

    def __init__(self) -> None:
        self.watchers: dict[int, set[Latest]] = {}
        self.task: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def changes(self, pk: int) -> AsyncIterator[Latest]:
        """What each poll sees of question `pk`, while the block runs; the request's API
        slot (common.asgi.Slots) is given back meanwhile."""
        latest = Latest()
        self.watchers.setdefault(pk, set()).add(latest)
        if self.task is None or self.task.done():
            # A context of its own: the request that starts the task ends long before it,
            # and the task's reads must not go to that request's thread.
            self.task = asyncio.create_task(self._poll(), context=contextvars.Context())
        try:
            async with slot_released():
                yield latest
        finally:
            watchers = self.watchers[pk]
            watchers.discard(latest)
            if not watchers:
                del self.watchers[pk]

    async def _poll(self) -> None:
        while self.watchers:
            seen = await in_a_thread(_look_or_nothing)(list(self.watchers))
            for pk, now in seen.items():
                for latest in self.watchers.get(pk, ()):
                    latest.put(now)
            await asyncio.sleep(POLL_SECONDS)


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watch] = weakref.WeakKeyDictionary()


def changes(pk: int) -> AbstractAsyncContextManager[Latest]:
    """`Watch.changes` on the running event loop's watch."""
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = Watch()
    return watch.changes(pk)
