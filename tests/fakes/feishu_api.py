"""Feishu's endpoints on the fake platform server.

Like Feishu, errors come as HTTP 400 with the code in the JSON body. Accepted replies are
recorded under "feishu", card operations under "feishu_card", so `reset()` clears both.
"""

from __future__ import annotations

import json
from typing import Any

from .http import Recorded

TEXT_LIMIT = 150 * 1024
CARD_LIMIT = 30 * 1024
BOT_OPEN_ID = "ou_fake_bot"
MESSAGE_TYPES = ("text", "interactive")


def error(code: int, msg: str) -> tuple[int, Any]:
    return 400, {"code": code, "msg": msg}


def ok(data: dict[str, Any] | None = None) -> tuple[int, Any]:
    return 200, {"code": 0, "msg": "success", "data": data or {}}


class FeishuAPI:
    def feishu_reset(self) -> None:
        # What bot/v3/info says the app's bot is.
        self.feishu_bot_open_id = BOT_OPEN_ID

    def feishu_token(self, request: Recorded) -> tuple[int, Any]:
        body = request.json or {}
        if not body.get("app_id") or not body.get("app_secret"):
            return error(10003, "invalid param")
        if body["app_secret"] in self.bad_secrets:
            return error(10014, "app secret invalid")
        token = self.new_token()
        return 200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200}

    def feishu_authorized(self, request: Recorded) -> bool:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return self.token_valid(token)

    def feishu_reply(self, request: Recorded) -> tuple[int, Any]:
        if not self.feishu_authorized(request):
            return error(99991663, "Invalid access token for authorization.")
        body = request.json or {}
        if not request.path.endswith("/reply") or body.get("msg_type") not in MESSAGE_TYPES:
            return error(230001, "invalid message content")
        if len(body.get("content", "").encode()) > TEXT_LIMIT:
            return error(230025, "message content too long")
        # Like Feishu, one message per uuid: a resent request is answered, not delivered again.
        if not any(m.get("uuid") == body.get("uuid") for m in self.messages("feishu")):
            self.deliver("feishu", body)
        return ok({"message_id": f"om_{self.next_id()}"})

    def feishu_create_card(self, request: Recorded) -> tuple[int, Any]:
        if not self.feishu_authorized(request):
            return error(99991663, "Invalid access token for authorization.")
        card = json.loads((request.json or {}).get("data") or "null")
        if not isinstance(card, dict) or card.get("schema") != "2.0":
            return error(300307, "The card DSL is empty")
        card_id = f"card_{self.next_id()}"
        self.deliver("feishu_card", {"op": "create", "card_id": card_id, "card": card})
        return ok({"card_id": card_id})

    def feishu_card_operation(self, request: Recorded) -> tuple[int, Any]:
        """PUT …/cards/{id}/elements/{element}/content and PATCH …/cards/{id}/settings."""
        if not self.feishu_authorized(request):
            return error(99991663, "Invalid access token for authorization.")
        card_id, *rest = request.path.removeprefix("/open-apis/cardkit/v1/cards/").split("/")
        operations = [c for c in self.messages("feishu_card") if c["card_id"] == card_id]
        if not operations:
            return error(200740, "The card entity does not exist")
        body = request.json or {}
        sequence = body.get("sequence")
        if not isinstance(sequence, int) or not 1 <= sequence < 2**31:
            return error(10002, "invalid sequence")
        if sequence <= max(c.get("sequence", 0) for c in operations):
            return error(300317, "sequence number did not increment")
        if len(json.dumps(body.get("content", ""), ensure_ascii=False).encode()) > CARD_LIMIT:
            return error(200860, "Card content exceeds limit.")
        op = "content" if rest[-1:] == ["content"] else "settings"
        self.deliver("feishu_card", {"op": op, "card_id": card_id, "path": rest, **body})
        return ok()

    def feishu_bot_info(self, request: Recorded) -> tuple[int, Any]:
        """What the docs tell admins to call to learn the bot's open_id."""
        if not self.feishu_authorized(request):
            return error(99991663, "Invalid access token for authorization.")
        bot = {"app_name": "Fake", "open_id": self.feishu_bot_open_id}
        return 200, {"code": 0, "msg": "ok", "bot": bot}

    def feishu_chat(self) -> list[str]:
        """What the chat shows, in order: each text reply, and each card's latest text."""
        shown = []
        for message in self.messages("feishu"):
            content = json.loads(message["content"])
            if message["msg_type"] == "text":
                shown.append(content["text"])
            else:
                shown.append(self.feishu_card_text(content["data"]["card_id"]))
        return shown

    def feishu_card_text(self, card_id: str) -> str:
        text = ""
        for operation in self.messages("feishu_card"):
            if operation["card_id"] != card_id:
                continue
            if operation["op"] == "create":
                text = operation["card"]["body"]["elements"][0]["content"]
            elif operation["op"] == "content":
                text = operation["content"]
        return text

    ROUTES = {
        ("POST", "/open-apis/auth/v3/tenant_access_token/internal"): feishu_token,
        ("POST", "/open-apis/im/v1/messages/*"): feishu_reply,
        ("POST", "/open-apis/cardkit/v1/cards"): feishu_create_card,
        ("PUT", "/open-apis/cardkit/v1/cards/*"): feishu_card_operation,
        ("PATCH", "/open-apis/cardkit/v1/cards/*"): feishu_card_operation,
        ("GET", "/open-apis/bot/v3/info"): feishu_bot_info,
    }
