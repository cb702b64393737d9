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
        content = (request.json or {}).get("text", {}).get("content", "")
        if len(content.encode()) > 2048:
            return 200, {"errcode": 44004, "errmsg": "content exceed max length"}
        self.deliver("wecom", request.json)
        return 200, {"errcode": 0, "errmsg": "ok", "msgid": f"msg-{self.next_id()}"}

    def wecom_bot_response(self, request: Recorded) -> tuple[int, Any]:
        """A smart robot's response_url: the callback's response_code is the only credential."""
        if not request.query.get("response_code"):
            return 200, {"errcode": 40001, "errmsg": "invalid response_code"}
        self.deliver("wecom_bot", request.json)
        return 200, {"errcode": 0, "errmsg": "ok"}

    ROUTES = {
        ("GET", "/cgi-bin/gettoken"): wecom_gettoken,
        ("POST", "/cgi-bin/message/send"): wecom_send,
        ("POST", "/cgi-bin/aibot/response"): wecom_bot_response,
    }
