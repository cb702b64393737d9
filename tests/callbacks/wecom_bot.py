"""Build WeCom smart-robot callbacks exactly as WeCom signs and encrypts them, and read our replies.

Every builder returns keyword arguments for Django's `client.generic`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings

from channels_im.platforms.wecom.crypto import WxBizMsgCrypt
from tests.callbacks import as_json
from tests.callbacks.wecom import _flip_a_byte, with_query

AIBOTID = "aibot-spec-0001"
ROBOT_CREDENTIALS = {
    "token": "SpecToken2024",
    "encoding_aes_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    "bot_id": AIBOTID,
}


def crypt_for(bot) -> WxBizMsgCrypt:
    return WxBizMsgCrypt(bot.credentials["token"], bot.credentials["encoding_aes_key"], "")


def response_url(msg_id: str) -> str:
    """Where WeCom would let us answer late; on the API base the tests point at the fake."""
    return f"{settings.WECOM_API_BASE}/cgi-bin/aibot/response?response_code=RC-{msg_id}"


def robot_payload(
    msg_id: str,
    msgtype: str,
    *,
    group: bool = True,
    sender: str = "zhangsan",
    chat_id: str = "wrkSFfCgAAxxxx",
    aibotid: str = AIBOTID,
    **fields: Any,
) -> dict[str, Any]:
    """The decrypted JSON of one callback; `fields` adds the type's own part (text=…)."""
    payload: dict[str, Any] = {
        "msgid": msg_id,
        "aibotid": aibotid,
        "chattype": "group" if group else "single",
        "from": {"userid": sender},
        "msgtype": msgtype,
        **fields,
    }
    if group:
        payload["chatid"] = chat_id
    return payload


def signed_request(
    bot,
    payload: dict[str, Any],
    *,
    forge: bool = False,
    stale: bool = False,
    tamper: bool = False,
) -> dict[str, Any]:
    crypt = crypt_for(bot)
    encrypted = crypt.encrypt(as_json(payload))
    if tamper:
        encrypted = _flip_a_byte(encrypted)
    timestamp, nonce = str(int(time.time()) - (7200 if stale else 0)), "1372623149"
    query = {
        "msg_signature": "f" * 40 if forge else crypt.signature(timestamp, nonce, encrypted),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    return {
        "method": "POST",
        "path": with_query(bot.callback_path, query),
        "data": json.dumps({"encrypt": encrypted}).encode(),
        "content_type": "application/json",
    }


def message_request(
    bot,
    text: str,
    msg_id: str,
    *,
    forge: bool = False,
    stale: bool = False,
    tamper: bool = False,
    group: bool = True,
    mention: str = "@SpecBot",
    **fields: Any,
) -> dict[str, Any]:
    """A user's text message; in a group it starts with the robot's @mention, as WeCom sends it.

    `fields` go to `robot_payload` (sender=…, aibotid=…, response_url=…).
    """
    content = f"{mention} {text}" if group and mention else text
    fields.setdefault("response_url", response_url(msg_id))
    body = robot_payload(msg_id, "text", group=group, text={"content": content}, **fields)
    return signed_request(bot, body, forge=forge, stale=stale, tamper=tamper)


def refresh_request(bot, stream_id: str, *, msg_id: str = "") -> dict[str, Any]:
    """WeCom polling a stream we named; it sends these until our answer says finish."""
    body = robot_payload(msg_id or f"refresh-{time.monotonic_ns()}", "stream")
    body["stream"] = {"id": stream_id}
    return signed_request(bot, body)


def verification_request(bot, echo: str) -> dict[str, Any]:
    """The GET WeCom sends when the admin saves the robot's URL in its console."""
    crypt = crypt_for(bot)
    echostr = crypt.encrypt(echo)
    timestamp, nonce = str(int(time.time())), "1372623149"
    query = {
        "msg_signature": crypt.signature(timestamp, nonce, echostr),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": echostr,
    }
    return {"method": "GET", "path": with_query(bot.callback_path, query)}


def decode_reply(bot, response) -> dict[str, Any]:
    """Our passive reply, checked as WeCom checks it: `msgsignature`, then decryption."""
    envelope = json.loads(response.content)
    crypt = crypt_for(bot)
    crypt.verify(
        envelope["msgsignature"], envelope["timestamp"], envelope["nonce"], envelope["encrypt"]
    )
    return json.loads(crypt.decrypt(envelope["encrypt"]))


def stream_of(bot, response) -> dict[str, Any]:
    """The `stream` object of our reply: id, finish, content."""
    reply = decode_reply(bot, response)
    assert reply["msgtype"] == "stream", reply
    return reply["stream"]
