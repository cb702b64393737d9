"""WeCom's endpoints on the fake platform server."""

from __future__ import annotations

from typing import Any

from .http import Recorded

UNTRUSTED_IP_TEXT = (
    "not allow to access from your ip, hint: [1700000000000000000000000], from ip: {ip}, "
    "more info at https://open.work.weixin.qq.com/devtool/query?e=60020"
)


class WeComAPI:
    def wecom_reset(self) -> None:
        # The IP WeCom sees a call from when it is not on the app's trusted list (60020).
        self.wecom_untrusted_ip: str | None = None
        # The apps' AgentIds agent/get knows; None: any number.
        self.wecom_agent_ids: set[str] | None = None

    def wecom_gettoken(self, request: Recorded) -> tuple[int, Any]:
        if not request.query.get("corpid") or not request.query.get("corpsecret"):
            return 200, {"errcode": 40013, "errmsg": "invalid corpid"}
        if request.query["corpsecret"] in self.bad_secrets:
            return 200, {"errcode": 40001, "errmsg": "invalid credential"}
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

    def wecom_agent_get(self, request: Recorded) -> tuple[int, Any]:
        """The app's details: a harmless read, refused like every call but the token from
        an IP not on the app's trusted list."""
        if not self.token_valid(request.query.get("access_token")):
            return 200, {"errcode": 42001, "errmsg": "access_token expired"}
        if self.wecom_untrusted_ip:
            text = UNTRUSTED_IP_TEXT.format(ip=self.wecom_untrusted_ip)
            return 200, {"errcode": 60020, "errmsg": text}
        agent_id = request.query.get("agentid", "")
        known = self.wecom_agent_ids
        if not agent_id.isdigit() or (known is not None and agent_id not in known):
            return 200, {"errcode": 40056, "errmsg": "invalid agentid"}
        return 200, {"errcode": 0, "errmsg": "ok", "agentid": int(agent_id), "name": "Helpdesk"}

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
        ("GET", "/cgi-bin/agent/get"): wecom_agent_get,
        ("POST", "/cgi-bin/aibot/response"): wecom_bot_response,
    }
