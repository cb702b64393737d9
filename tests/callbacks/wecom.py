"""Build callbacks exactly as the platforms sign and encrypt them."""

from __future__ import annotations

import time
import uuid

from channels_im.platforms.wecom.crypto import WxBizMsgCrypt


def wecom_text_xml(
    content: str,
    *,
    msg_id: str | None = None,
    sender: str = "zhangsan",
    corp_id: str = "ww1234567890abcdef",
    msg_type: str = "text",
) -> str:
    msg_id = msg_id or str(uuid.uuid4().int % 10**19)
    return (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId>"
        f"<AgentID>1000002</AgentID></xml>"
    )


def wecom_post(
    credentials: dict,
    plaintext: str,
    *,
    timestamp: int | None = None,
    receive_id: str | None = None,
    tamper: bool = False,
) -> tuple[dict, bytes]:
    """(query string, body) of a WeCom app callback carrying `plaintext`."""
    crypt = WxBizMsgCrypt(
        credentials["token"],
        credentials["encoding_aes_key"],
        credentials["corp_id"] if receive_id is None else receive_id,
    )
    encrypted = crypt.encrypt(plaintext)
    if tamper:
        encrypted = _flip_a_byte(encrypted)
    ts, nonce = str(timestamp or int(time.time())), "nonce123"
    query = {
        "msg_signature": crypt.signature(ts, nonce, encrypted),
        "timestamp": ts,
        "nonce": nonce,
    }
    body = (
        f"<xml><ToUserName><![CDATA[{credentials['corp_id']}]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID>1000002</AgentID></xml>"
    )
    return query, body.encode()


def _flip_a_byte(encrypted: str) -> str:
    import base64

    raw = bytearray(base64.b64decode(encrypted))
    raw[40] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def with_query(path: str, query: dict) -> str:
    from urllib.parse import urlencode

    return f"{path}?{urlencode(query)}"


def message_request(
    bot,
    text: str,
    msg_id: str,
    *,
    sender: str = "zhangsan",
    forge: bool = False,
    stale: bool = False,
    tamper: bool = False,
) -> dict:
    """Keyword arguments for `client.generic` (or `requests.request`) carrying one message."""
    timestamp = int(time.time()) - 7200 if stale else None
    xml = wecom_text_xml(text, msg_id=msg_id, sender=sender)
    query, body = wecom_post(bot.credentials, xml, timestamp=timestamp, tamper=tamper)
    if forge:
        query["msg_signature"] = "f" * 40
    return {
        "method": "POST",
        "path": with_query(bot.callback_path, query),
        "data": body,
        "content_type": "text/xml",
    }
