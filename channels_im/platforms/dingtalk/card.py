"""AI card streaming (spec §2.6): the answer types itself into a card as the model writes.

The card template, made in DingTalk's card platform (卡片平台) from the AI card type, must
declare a variable named `content` (CARD_CONTENT_KEY): the answer streams into it.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..base import DeliveryError, LiveReply
from .client import DingTalkClient

CARD_CONTENT_KEY = "content"
# The AI card's flowStatus values; cardParamMap values are strings.
PROCESSING, FINISHED = "1", "3"


def card_space(robot_code: str, *, group: str | None, user: str) -> dict[str, Any]:
    """Where a card is delivered: a group by its conversation id, else the user's robot chat."""
    if group:
        return {
            "openSpaceId": f"dtv1.card//IM_GROUP.{group}",
            "imGroupOpenSpaceModel": {"supportForward": True},
            "imGroupOpenDeliverModel": {"robotCode": robot_code},
        }
    return {
        "openSpaceId": f"dtv1.card//IM_ROBOT.{user}",
        "imRobotOpenSpaceModel": {"supportForward": True},
        "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT", "robotCode": robot_code},
    }


def stream(client: DingTalkClient, out_track_id: str, text: str, *, final: bool = False) -> None:
    """Replace the card's content with `text`; `final` ends its typing animation."""
    client.call(
        "PUT",
        "/v1.0/card/streaming",
        {
            "outTrackId": out_track_id,
            "guid": str(uuid.uuid4()),  # DingTalk drops a repeated guid as a duplicate
            "key": CARD_CONTENT_KEY,
            "content": text,
            "isFull": True,
            "isFinalize": final,
            "isError": False,
        },
    )


def finish(client: DingTalkClient, out_track_id: str, text: str) -> None:
    """Show the whole answer and mark the card done, so it stops looking busy."""
    stream(client, out_track_id, text, final=True)
    client.call(
        "PUT",
        "/v1.0/card/instances",
        {
            "outTrackId": out_track_id,
            "cardData": {"cardParamMap": {"flowStatus": FINISHED, CARD_CONTENT_KEY: text}},
            "cardUpdateOptions": {"updateCardDataByKey": True},
        },
    )


class AICard(LiveReply):
    """One answer's card: created at the first text, then its content replaced as it grows."""

    def __init__(self, client: DingTalkClient, key: str, target: dict[str, Any], started: str):
        self.client = client
        self.key = key
        self.target = target  # template id and delivery space
        self.out_track_id = started  # set when an earlier attempt already made the card

    def start(self, text: str) -> dict[str, Any]:
        # The row's key plus randomness: outTrackIds must stay unique across reinstalls.
        out_track_id = f"{self.key}-{uuid.uuid4().hex}"
        card = {
            **self.target,
            "outTrackId": out_track_id,
            "cardData": {"cardParamMap": {"flowStatus": PROCESSING}},
            "userIdType": 1,  # the ids in the space are staff ids, not unionIds
        }
        answer = self.client.call("POST", "/v1.0/card/instances/createAndDeliver", card)
        results = (answer.get("result") or {}).get("deliverResults") or []
        if any(not result.get("success") for result in results):
            raise DeliveryError("DingTalk card: not delivered to the chat", permanent=True)
        self.out_track_id = out_track_id
        stream(self.client, out_track_id, text)
        return {"out_track_id": out_track_id}

    def update(self, text: str) -> None:
        stream(self.client, self.out_track_id, text)
