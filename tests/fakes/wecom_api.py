"""WeCom's endpoints on the fake platform server."""

from __future__ import annotations

from typing import Any

from .http import Recorded


class WeComAPI:
    def wecom_gettoken(self, request: Recorded) -> tuple[int, Any]:
        if not request.query.get("corpid") or not request.query.get("corpsecret"):
            return 200, {"errcode": 40013, "errmsg": "invalid corpid"}
        return 200, {
            "errcode": 0,
            "errmsg": "ok",
            "access_token": self.new_token(),
            "expires_in": 7200,
        }

    def wecom_send(self, request: Recorded) -> tuple[int, Any]:
        if not self.token_valid(request.query.get("access_token")):
            return 200, {"errcode": 42001, "errmsg": "access_token expired"}
        body = request.json or {}
        msgtype = body.get("msgtype")
        if msgtype not in ("text", "markdown"):
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        content = (body.get(msgtype) or {}).get("content", "")
        if len(content.encode()) > 2048:
            return 200, {"errcode": 44004, "errmsg": "content exceed max length"}
        self.deliver("wecom", body)
        return 200, {"errcode": 0, "errmsg": "ok", "msgid": f"msg-{self.next_id()}"}

    def wecom_bot_response(self, request: Recorded) -> tuple[int, Any]:
        """A smart robot's response_url: the callback's response_code is the only credential."""
        if not request.query.get("response_code"):
            return 200, {"errcode": 40001, "errmsg": "invalid response_code"}
        self.deliver("wecom_bot", request.json)
        return 200, {"errcode": 0, "errmsg": "ok"}

    def wecom_texts(self) -> list[str]:
        """What an app's messages said, text or markdown, in order."""
        return [m[m["msgtype"]]["content"] for m in self.messages("wecom")]

    ROUTES = {
        ("GET", "/cgi-bin/gettoken"): wecom_gettoken,
        ("POST", "/cgi-bin/message/send"): wecom_send,
        ("POST", "/cgi-bin/aibot/response"): wecom_bot_response,
    }
