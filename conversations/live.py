"""What the person sees while the model writes: the answer growing in a live message
(throttled to the platform's rate limit), or, where the platform has none, one short
word that the answer is coming."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from django.conf import settings

from channels_im.platforms.base import DeliveryError, LiveReply

from .claims import Claim
from .delivery import outbound_for
from .models import Message

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
        self.status(self.thinking_text)

    def status(self, text: str) -> bool:
        """Show a word on the answer's progress (queued, the model loading, thinking) where
        the answer will appear; False where the live channel shows only the answer."""
        if not self.live.shows_thinking:
            return False
        self._push(text)
        return True

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


class SignOfLife:
    """For platforms without a live message (a WeCom app, DingTalk without an AI card):
    one short message once an answer has taken IM_SIGN_OF_LIFE_SECONDS, so a long answer
    is not 30 s of nothing. A context manager around the model call; leaving it waits
    for a notice in flight, so the notice never arrives after the answer, but not for
    the timer's thread to end: a busy machine may take milliseconds to run it, and the
    answer would wait for that."""

    def __init__(self, question: Claim, text: str):
        self.question = question
        self.text = text
        self.timer = threading.Timer(settings.IM_SIGN_OF_LIFE_SECONDS, self._send)
        self.sending = threading.Lock()  # held while the notice is on its way
        self.over = False

    def __enter__(self) -> SignOfLife:
        if settings.IM_SIGN_OF_LIFE_SECONDS > 0:
            self.timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.timer.cancel()
        with self.sending:
            self.over = True

    def _send(self) -> None:
        with self.sending:
            if not self.over:
                send_notice(self.question.row, self.text, key=f"w{self.question.row.pk}")


def send_notice(question: Message, text: str, *, key: str) -> None:
    """One short message to the asker about their answer's progress, under its own
    idempotency `key`; a failure is logged: a missed notice is no reason to fail the answer."""
    try:
        question.bot.adapter.send(outbound_for(question, text=text, key=key))
    except DeliveryError as exc:
        logger.warning("message %s: a progress notice failed: %s", question.pk, exc)
