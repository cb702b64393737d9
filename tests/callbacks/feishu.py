"""Build Feishu callbacks exactly as Feishu encrypts and signs them (event subscription v2)."""

from __future__ import annotations

import base64
import json
import time
import uuid

from channels_im.platforms.feishu.crypto import FeishuCipher, feishu_signature
from tests.callbacks import as_json

BOT_OPEN_ID = "ou_bot_0001"
SENDER_OPEN_ID = "ou_sender_zhangsan"


def text_event(
    credentials: dict,
    text: str,
    msg_id: str,
    *,
    group: bool = False,
    mention_bot: bool = True,
    event_id: str | None = None,
    message_type: str = "text",
    token: str | None = None,
) -> dict:
    """An im.message.receive_v1 event; in a group, `text` follows an @mention."""
    mentions = []
    if group:
        mentioned = credentials.get("bot_open_id", BOT_OPEN_ID) if mention_bot else "ou_someone"
        mentions = [{"key": "@_user_1", "id": {"open_id": mentioned}, "name": "Bot"}]
        text = f"@_user_1 {text}"
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or uuid.uuid4().hex,
            "event_type": "im.message.receive_v1",
            "create_time": str(int(time.time() * 1000)),
            "token": credentials["verification_token"] if token is None else token,
            "app_id": credentials["app_id"],
            "tenant_key": "tenant_key_0001",
        },
        "event": {
            "sender": {"sender_id": {"open_id": SENDER_OPEN_ID}, "sender_type": "user"},
            "message": {
                "message_id": msg_id,
                "chat_id": "oc_group_0001" if group else "oc_p2p_0001",
                "chat_type": "group" if group else "p2p",
                "message_type": message_type,
                "content": json.dumps({"text": text}, ensure_ascii=False),
                "mentions": mentions,
            },
        },
    }


def feishu_post(
    bot,
    plaintext: str,
    *,
    timestamp: int | None = None,
    forge: bool = False,
    tamper: bool = False,
    encrypt: bool = True,
) -> dict:
    """Keyword arguments for `client.generic`: `plaintext` encrypted and signed for `bot`."""
    encrypt_key = bot.credentials["encrypt_key"]
    body = plaintext
    if encrypt:
        encrypted = FeishuCipher(encrypt_key).encrypt(plaintext)
        body = json.dumps({"encrypt": _flip_a_byte(encrypted) if tamper else encrypted})
    ts, nonce = str(timestamp or int(time.time())), uuid.uuid4().hex
    signature = feishu_signature(ts, nonce, encrypt_key, body.encode())
    return {
        "method": "POST",
        "path": bot.callback_path,
        "data": body.encode(),
        "content_type": "application/json",
        "headers": {
            "X-Lark-Request-Timestamp": ts,
            "X-Lark-Request-Nonce": nonce,
            "X-Lark-Signature": "f" * 64 if forge else signature,
        },
    }


def message_request(
    bot,
    text: str,
    msg_id: str,
    *,
    forge: bool = False,
    stale: bool = False,
    tamper: bool = False,
    group: bool = False,
    mention_bot: bool = True,
    event_id: str | None = None,
) -> dict:
    """One user message to `bot`, as `client.generic` keyword arguments."""
    event = text_event(
        bot.credentials, text, msg_id, group=group, mention_bot=mention_bot, event_id=event_id
    )
    timestamp = int(time.time()) - 7200 if stale else None
    return feishu_post(bot, as_json(event), timestamp=timestamp, forge=forge, tamper=tamper)


def recall_request(bot, msg_id: str, *, recall_type: str = "message_owner") -> dict:
    """An im.message.recalled_v1 event: `msg_id` taken back, as `client.generic` kwargs."""
    event = {
        "schema": "2.0",
        "header": {
            "event_id": uuid.uuid4().hex,
            "event_type": "im.message.recalled_v1",
            "create_time": str(int(time.time() * 1000)),
            "token": bot.credentials["verification_token"],
            "app_id": bot.credentials["app_id"],
            "tenant_key": "tenant_key_0001",
        },
        "event": {
            "message_id": msg_id,
            "chat_id": "oc_p2p_0001",
            "recall_time": str(int(time.time() * 1000)),
            "recall_type": recall_type,
        },
    }
    return feishu_post(bot, as_json(event))


def url_verification_request(
    bot, challenge: str, *, encrypt: bool = True, token: str | None = None
) -> dict:
    """The console's handshake when the request URL is saved; it carries no signature."""
    plain = {
        "challenge": challenge,
        "token": bot.credentials["verification_token"] if token is None else token,
        "type": "url_verification",
    }
    request = feishu_post(bot, json.dumps(plain), encrypt=encrypt)
    del request["headers"]
    return request


def _flip_a_byte(encrypted: str) -> str:
    """Flip the last padding byte (through the block before it): decryption must fail."""
    raw = bytearray(base64.b64decode(encrypted))
    raw[-17] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()
