"""The tenant's API bot: no callbacks in, no platform to send to.

A message comes from `POST /api/v1/messages/` (conversations.api), not a callback, and
its answer stays on its row, where the caller reads it (waiting, or later). While the
model writes, the text so far is kept in the cache for the message's event stream.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from .. import base

# Longer than any answer takes: the stream's readers come while it is written.
LIVE_TTL_SECONDS = 3600


def live_key(reply_key: str) -> str:
    """Where the text so far of an answer is kept, by its outbound key (the pipeline's
    live channel is addressed to the question: "q<question id>")."""
    return f"im:api:live:{reply_key}"


class ApiAdapter(base.PlatformAdapter):
    label = _("REST API (integrations)")
    # The whole answer goes into its row; there is no per-message limit to split at.
    max_message_bytes = 10**9
    takes_callbacks = False

    def verify(self, request: HttpRequest) -> None:
        raise base.SignatureInvalid("an API bot takes no callbacks")

    def parse(self, request: HttpRequest) -> base.CallbackResult:
        raise base.BadPayload("an API bot takes no callbacks")

    def ack(self, result: base.CallbackResult) -> HttpResponse:
        raise NotImplementedError("an API bot takes no callbacks")

    def send(self, reply: base.OutboundReply) -> None:
        """Nothing to send: the answer's row, written once this returns, is the answer."""

    def live(self, reply: base.OutboundReply) -> base.LiveReply | None:
        return ApiLive(live_key(reply.key))


class ApiLive(base.LiveReply):
    """The text so far, for `GET /api/v1/messages/{id}/stream/`."""

    interval = 0.2
    shows_thinking = False  # the deltas concatenate to the answer, nothing else

    def __init__(self, key: str):
        self.key = key

    def start(self, text: str) -> dict[str, Any]:
        self.update(text)
        return {"key": self.key}

    def update(self, text: str) -> None:
        cache.set(self.key, text, LIVE_TTL_SECONDS)
