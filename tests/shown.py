"""What a chat shows of an answer that streamed into a live message, read off the fakes."""

from __future__ import annotations

import json

from channels_im.models import Bot
from channels_im.platforms.wecom_bot.stream import StreamStore
from conversations.models import Message
from tests.fakes.platforms import FakePlatforms


def live_message(bot: Bot, question: Message, platforms: FakePlatforms) -> tuple[str, bool]:
    """(the text the answer's live message shows, whether it is finished): a Feishu card
    (streaming mode turned off), a DingTalk AI card (finalized) or a WeCom robot's stream
    (marked finish, read from the cache the worker shares)."""
    if bot.platform == "feishu":
        operations = platforms.messages("feishu_card")
        [card_id] = {op["card_id"] for op in operations}
        settings = [json.loads(op["settings"]) for op in operations if op["op"] == "settings"]
        finished = bool(settings) and settings[-1]["config"]["streaming_mode"] is False
        return platforms.feishu_card_text(card_id), finished
    if bot.platform == "dingtalk":
        cards = [body for body in platforms.messages("dingtalk") if "isFinalize" in body]
        return (cards[-1]["content"], True) if cards else ("", False)
    shown = StreamStore(str(bot.public_id)).read(question.reply_context["stream_id"])
    return shown["text"], shown["finished"]
