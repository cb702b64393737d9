"""Feeding the model's stream to a platform's live channel, throttled to its rate limit."""

from __future__ import annotations

import logging
import time

from channels_im.platforms.base import DeliveryError, LiveReply

from .claims import Claim

logger = logging.getLogger(__name__)


class LiveProgress:
    """The `on_delta` callback of one answer. A failing live channel never fails the
    answer: the final text is delivered by `send` all the same.

    What the live channel's `start` returns is kept on the question's row (its
    `reply_context["live"]`), where the outbound reply reads it back as `live`.
    """

    def __init__(self, question: Claim, live: LiveReply, thinking_text: str):
        self.question = question
        self.live = live
        self.thinking_text = thinking_text  # shown while a reasoning model thinks
        self.text = ""
        self.last_push = 0.0
        self.broken = False

    def __call__(self, delta: str) -> None:
        self.text += delta
        self._push(self.text)

    def thinking(self) -> None:
        """The model reasons before it answers: say so where the answer will appear."""
        self._push(self.thinking_text)

    def _push(self, shown: str) -> None:
        now = time.monotonic()
        if self.broken or (self.last_push and now - self.last_push < self.live.interval):
            return
        try:
            self._show(shown)
        except DeliveryError as exc:
            logger.warning("live updates for message %s stopped: %s", self.question.row.pk, exc)
            self.broken = True
        self.last_push = now

    def _show(self, shown: str) -> None:
        context = self.question.row.reply_context
        if "live" in context:  # started by this attempt or by an earlier one
            self.live.update(shown)
            return
        self.question.record(reply_context={**context, "live": self.live.start(shown)})
