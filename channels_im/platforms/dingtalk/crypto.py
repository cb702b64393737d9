"""DingTalk robot signing (spec §2.2): checks inbound robot callbacks, signs webhooks.

Encrypted event callbacks use WeCom's envelope (`wecom.crypto.WxBizMsgCrypt`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def dingtalk_sign(timestamp: str, app_secret: str) -> str:
    """Base64 HMAC-SHA256 of `timestamp + "\\n" + secret`, keyed by the secret.

    Inbound robot callbacks compare it to the `sign` header as is; custom-robot webhooks
    must URL-encode it before putting it in the query string.
    """
    digest = hmac.new(
        app_secret.encode(), f"{timestamp}\n{app_secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")
