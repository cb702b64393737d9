"""A smart robot's streams: the text each shows, written by the worker, read by the web.

The reply to a user message names a stream; WeCom then polls it with stream-refresh
callbacks until one says `finish` (spec §1.6). The worker writes the text so far to the
cache and the web process answers each poll from there, so a poll costs one cache read
and never waits on the model.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.cache import cache

from ..base import LiveReply
from ..text import split_first

# The stream content limit is not documented; ~20,480 bytes circulates, so stay below it.
MAX_STREAM_BYTES = 20_000
# Long enough to outlive WeCom's polling and response_url's one-hour validity.
STREAM_TTL_SECONDS = 3600


def stream_id_for(bot_public_id: str, msgid: str) -> str:
    """Derived, not stored: a retried callback must name the same stream without a query."""
    return hashlib.sha256(f"{bot_public_id}:{msgid}".encode()).hexdigest()[:32]


def split_stream(text: str) -> tuple[str, str]:
    """The part a stream can show, and the rest (empty unless the answer is very long)."""
    head, rest = split_first(text, MAX_STREAM_BYTES)
    return head, rest.strip()


class StreamStore:
    """The text each stream shows, shared by the worker (writes) and the web (reads)."""

    def __init__(self, bot_public_id: str):
        self.prefix = f"im:wecom_bot:{bot_public_id}:"

    def read(self, stream_id: str) -> dict[str, Any] | None:
        """{"text": …, "finished": bool}, or None before the first token."""
        return cache.get(self.prefix + stream_id)

    def write(self, stream_id: str, text: str, *, finished: bool = False) -> None:
        value = {"text": split_stream(text)[0], "finished": finished}
        cache.set(self.prefix + stream_id, value, STREAM_TTL_SECONDS)


class StreamLive(LiveReply):
    """The worker's side of a stream: each write is shown by WeCom's next poll."""

    # Each update is one cache write that the next poll picks up. WeCom polls about once a
    # second, so writing more often than this only costs the worker CPU.
    interval = 0.3

    def __init__(self, store: StreamStore, stream_id: str):
        self.store = store
        self.stream_id = stream_id

    def start(self, text: str) -> dict[str, Any]:
        self.update(text)
        return {"stream_id": self.stream_id}

    def update(self, text: str) -> None:
        self.store.write(self.stream_id, text)


def stream_payload(stream_id: str, content: str, finish: bool) -> dict[str, Any]:
    return {"msgtype": "stream", "stream": {"id": stream_id, "finish": finish, "content": content}}
