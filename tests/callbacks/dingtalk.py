"""Build DingTalk callbacks exactly as DingTalk signs (robot) and encrypts (events) them."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from django.conf import settings

from channels_im.platforms.dingtalk.crypto import dingtalk_sign
from channels_im.platforms.wecom.crypto import WxBizMsgCrypt
from tests.callbacks import as_json

DINGTALK_CREDENTIALS = {
    "app_key": "dingspecappkey0001",
    "app_secret": "SpecAppSecret",
    "robot_code": "dingspecappkey0001",
    "token": "SpecToken2024",
    "aes_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
}
GROUP_ID = "cidGroupAcmeIT0000000000=="
HOUR_MS = 3_600_000


def now_ms() -> int:
    return int(time.time() * 1000)


_last_signed_ms = 0


def signing_ms() -> int:
    """The time a callback is signed at: now, and after the one signed before, as DingTalk
    sends them (a sign covers only its timestamp, so a repeat is taken for a replay)."""
    global _last_signed_ms
    _last_signed_ms = max(now_ms(), _last_signed_ms + 1)
    return _last_signed_ms


def robot_message(
    text: str,
    msg_id: str,
    *,
    sender: str = "zhangsan",
    group: bool = False,
    at_bot: bool = True,
    msgtype: str = "text",
    webhook_url: str | None = None,
    webhook_expired: bool = False,
    robot_code: str = DINGTALK_CREDENTIALS["robot_code"],
) -> dict[str, Any]:
    """A robot callback body as DingTalk sends it (spec §2.1)."""
    if webhook_url is None:
        webhook_url = f"{settings.DINGTALK_OAPI_BASE}/robot/sendBySession?session=s-{msg_id}"
    body: dict[str, Any] = {
        "msgtype": msgtype,
        "msgId": msg_id,
        "createAt": now_ms(),
        "conversationType": "2" if group else "1",
        "conversationId": GROUP_ID if group else f"cidSingle-{sender}==",
        "senderId": f"$:LWCP_v1:$encrypted-{sender}",
        "senderStaffId": sender,
        "senderNick": sender.title(),
        "chatbotUserId": "$:LWCP_v1:$robot",
        "robotCode": robot_code,
        "isInAtList": group and at_bot,
        "sessionWebhook": webhook_url,
        "sessionWebhookExpiredTime": now_ms() + (-1000 if webhook_expired else 90 * 60_000),
        # DingTalk removes the robot's @name from a group message but keeps the spaces.
        "text": {"content": f"  {text}" if group else text},
    }
    if group:
        body["conversationTitle"] = "IT 支持群"
    return body


def message_request(
    bot,
    text: str,
    msg_id: str,
    *,
    forge: bool = False,
    stale: bool = False,
    tamper: bool = False,
    group: bool = False,
    at_bot: bool = True,
    webhook_url: str | None = None,
    webhook_expired: bool = False,
    **message: Any,
) -> dict[str, Any]:
    """Keyword arguments for Django's `client.generic` carrying one signed robot message.

    The robot's sign covers only the timestamp, not the body, so `tamper` can only show
    as an unreadable body (400). Other keywords go to `robot_message`.
    """
    message.setdefault("robot_code", bot.credentials.get("robot_code", ""))  # names this robot
    body = robot_message(
        text,
        msg_id,
        group=group,
        at_bot=at_bot,
        webhook_url=webhook_url,
        webhook_expired=webhook_expired,
        **message,
    )
    timestamp = str(now_ms() - 2 * HOUR_MS if stale else signing_ms())
    secret = "not-the-app-secret" if forge else bot.credentials["app_secret"]
    data = as_json(body).encode()
    return {
        "method": "POST",
        "path": bot.callback_path,
        "data": data[: len(data) // 2] if tamper else data,
        "content_type": "application/json; charset=utf-8",
        "headers": {"timestamp": timestamp, "sign": dingtalk_sign(timestamp, secret)},
    }


def event_request(bot, event: dict[str, Any], *, timestamp: str | None = None) -> dict[str, Any]:
    """An encrypted event push (spec §2.4): signed query string, `{"encrypt": …}` body."""
    creds = bot.credentials
    crypt = WxBizMsgCrypt(creds["token"], creds["aes_key"], creds["app_key"])
    encrypted = crypt.encrypt(as_json(event))
    timestamp = timestamp or str(now_ms())
    query = {
        "signature": crypt.signature(timestamp, "nonce123", encrypted),
        "timestamp": timestamp,
        "nonce": "nonce123",
    }
    return {
        "method": "POST",
        "path": f"{bot.callback_path}?{urlencode(query)}",
        "data": json.dumps({"encrypt": encrypted}).encode(),
        "content_type": "application/json",
    }
