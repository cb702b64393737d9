"""A CardKit streaming card (JSON 2.0): the answer types itself into a card (spec §3.6)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from ..base import DeliveryError, LiveReply
from ..text import split_first
from .client import FeishuClient

logger = logging.getLogger(__name__)

# "sequence not increasing": on a finishing step, that step was already done.
SEQUENCE_NOT_INCREASING = 300317
# A card may be 30 KB; stay well below it after JSON escaping.
CARD_TEXT_BYTES = 20_000
CARDS = "/open-apis/cardkit/v1/cards"
ELEMENT_ID = "md_1"
CONTENT = f"elements/{ELEMENT_ID}/content"
# The largest sequence Feishu accepts (int32); finishing a card uses the top two.
LAST_SEQUENCE = 2**31 - 1


class StreamingCard(LiveReply):
    """A CardKit card (JSON 2.0) whose markdown element grows while the model writes.

    Every operation on a card needs a strictly increasing `sequence`. An update uses the
    milliseconds since the card was created (kept with it in the reply's `live`), so a
    retried answer keeps counting up; 14 days, the card's lifetime, fit in an int32. The
    final text and the end of streaming use the two largest int32 values: above any update
    whatever the workers' clocks, and when a retried finish meets 300317 that step is done.
    """

    interval = 0.3  # Feishu allows 10 operations per second on one card

    def __init__(
        self,
        api: FeishuClient,
        post: Callable[[str, str], None],
        uuid: str,
        state: dict[str, Any],
    ) -> None:
        """`post(card_id, uuid)` shows a new card in the chat, once per uuid (`uuid`, for
        a card this object starts); `state` is what an earlier `start` for this answer
        returned, if any."""
        self.api = api
        self.post = post
        self.uuid = uuid
        self.state = dict(state)
        self.sequence = 0

    def start(self, text: str) -> dict[str, Any]:
        data = json.dumps(streaming_card(card_text(text)), ensure_ascii=False)
        created = self.api.call("POST", CARDS, {"type": "card_json", "data": data})
        data_field = created.get("data")
        card_id = data_field.get("card_id") if isinstance(data_field, dict) else None
        if not card_id:
            raise DeliveryError(f"Feishu {CARDS}: no card_id in the answer", permanent=True)
        self.state = {"card_id": card_id, "created_ms": _now_ms(), "uuid": self.uuid}
        self.state["posted"] = False
        try:
            self.post(card_id, self.uuid)
        except DeliveryError as exc:
            if exc.permanent:
                raise
            # Feishu may have shown it all the same (its answer lost on the way): kept, so
            # `finish` posts it again under the same uuid, which Feishu shows at most once.
            logger.warning("streaming card %s: posting it may have failed: %s", card_id, exc)
            return self.state
        self.state["posted"] = True
        return self.state

    def update(self, text: str) -> None:
        elapsed = _now_ms() - int(self.state.get("created_ms", 0))
        self.sequence = max(self.sequence + 1, elapsed)
        self._call("PUT", CONTENT, {"content": card_text(text)}, self.sequence)

    def finish(self, text: str) -> None:
        """Show the final text and end streaming; safe to repeat after a partial failure."""
        if not self.state.get("posted", True):
            self.post(self.state["card_id"], self.state["uuid"])
            self.state["posted"] = True
        stop = {"settings": json.dumps({"config": {"streaming_mode": False}})}
        for method, where, payload, sequence in (
            ("PUT", CONTENT, {"content": text}, LAST_SEQUENCE - 1),
            ("PATCH", "settings", stop, LAST_SEQUENCE),
        ):
            try:
                self._call(method, where, payload, sequence)
            except DeliveryError as exc:
                if exc.code != SEQUENCE_NOT_INCREASING:
                    raise

    def _call(self, method: str, where: str, payload: dict[str, Any], sequence: int) -> None:
        path = f"{CARDS}/{self.state.get('card_id')}/{where}"
        self.api.call(method, path, {**payload, "sequence": sequence})


def streaming_card(text: str) -> dict[str, Any]:
    """Card JSON 2.0 in streaming mode: one markdown element that updates replace."""
    return {
        "schema": "2.0",
        "config": {"streaming_mode": True, "update_multi": True},
        "body": {"elements": [{"tag": "markdown", "element_id": ELEMENT_ID, "content": text}]},
    }


def card_text(text: str) -> str:
    """The part of the answer a card can show; `send` replies the rest as text."""
    return split_first(text, CARD_TEXT_BYTES)[0]


def _now_ms() -> int:
    return int(time.time() * 1000)
