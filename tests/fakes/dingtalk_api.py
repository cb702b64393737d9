"""DingTalk's endpoints on the fake platform server.

Both DINGTALK_OAPI_BASE (session webhooks) and DINGTALK_API_BASE (OpenAPI, AI cards) point
at the one fake; their paths do not overlap. Accepted messages are recorded under the key
"dingtalk" (a finished AI card counts as one message); `dingtalk_texts()` reads the answer
text out of any of those bodies.
"""

from __future__ import annotations

import json
from typing import Any

from .http import Recorded

TOKEN_HEADER = "x-acs-dingtalk-access-token"
INVALID_TOKEN = {
    "code": "InvalidAuthentication",
    "message": "不合法的access_token",
    "requestid": "fake-request",
}
CARD_SPACES = ("dtv1.card//IM_GROUP.", "dtv1.card//IM_ROBOT.")


def bad_request(message: str) -> tuple[int, Any]:
    return 400, {"code": "InvalidParameter", "message": message, "requestid": "fake-request"}


def header(request: Recorded, name: str) -> str | None:
    return next((v for k, v in request.headers.items() if k.lower() == name), None)


def message_text(body: dict[str, Any]) -> str:
    """The answer text of a webhook body, an OpenAPI send or a finished card."""
    if "markdown" in body:
        return body["markdown"]["text"]
    if "msgParam" in body:
        param = json.loads(body["msgParam"])
        return param.get("text", param.get("content", ""))
    if "content" in body:
        return body["content"]
    return body.get("text", {}).get("content", "")


class DingTalkAPI:
    def dingtalk_reset(self) -> None:
        # The robot codes and AI card templates DingTalk knows; None: any.
        self.dingtalk_robot_codes: set[str] | None = None
        self.dingtalk_card_templates: set[str] | None = None

    def dingtalk_texts(self) -> list[str]:
        """The texts of the messages DingTalk accepted, in order."""
        return [message_text(body) for body in self.messages("dingtalk")]

    def dingtalk_send_by_session(self, request: Recorded) -> tuple[int, Any]:
        body = request.json or {}
        if not request.query.get("session"):
            return 200, {"errcode": 300001, "errmsg": "session不存在"}
        kind = body.get("msgtype")
        if kind not in ("text", "markdown") or not (body.get(kind) or {}):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
        text = message_text(body)
        # DingTalk's rule: a markdown @ only works when "@<id>" also appears in the text.
        for user in (body.get("at") or {}).get("atUserIds") or []:
            if kind == "markdown" and f"@{user}" not in text:
                return 200, {"errcode": 400105, "errmsg": f"@{user} missing from the text"}
        self.deliver("dingtalk", body)
        return 200, {"errcode": 0, "errmsg": "ok"}

    def dingtalk_access_token(self, request: Recorded) -> tuple[int, Any]:
        body = request.json or {}
        if not body.get("appKey") or not body.get("appSecret"):
            return bad_request("appKey and appSecret are required")
        if body["appSecret"] in self.bad_secrets:
            return 400, {"code": "invalidClientSecret", "message": "无效的clientSecret"}
        return 200, {"accessToken": self.new_token(), "expireIn": 7200}

    def dingtalk_robot_send(self, request: Recorded) -> tuple[int, Any]:
        if not self.token_valid(header(request, TOKEN_HEADER)):
            return 400, INVALID_TOKEN  # DingTalk says so with a 400, not a 401
        body = request.json or {}
        group = request.path.endswith("/groupMessages/send")
        target = body.get("openConversationId") if group else body.get("userIds")
        if not body.get("robotCode") or not target:
            return bad_request("robotCode and a recipient are required")
        try:
            json.loads(body.get("msgParam") or "")
        except ValueError:
            return bad_request("msgParam must be a JSON string")
        self.deliver("dingtalk", body)
        answer: dict[str, Any] = {"processQueryKey": f"pqk-{self.next_id()}"}
        if not group:
            answer.update(invalidStaffIdList=[], flowControlledStaffIdList=[])
        return 200, answer

    def dingtalk_card_create(self, request: Recorded) -> tuple[int, Any]:
        if not self.token_valid(header(request, TOKEN_HEADER)):
            return 400, INVALID_TOKEN  # DingTalk says so with a 400, not a 401
        body = request.json or {}
        space = body.get("openSpaceId") or ""
        if not body.get("cardTemplateId") or not body.get("outTrackId"):
            return bad_request("cardTemplateId and outTrackId are required")
        if not space.startswith(CARD_SPACES):
            return bad_request("openSpaceId is not an IM group or robot space")
        space_type, space_id = space.removeprefix("dtv1.card//").split(".", 1)
        delivered = {"spaceType": space_type, "spaceId": space_id, "success": True}
        return 200, {
            "success": True,
            "result": {"outTrackId": body["outTrackId"], "deliverResults": [delivered]},
        }

    def dingtalk_read_status(self, request: Recorded) -> tuple[int, Any]:
        """The read status of a robot's message: refuses a robot it does not know, then a
        query key that names no message (every key but those of sent messages)."""
        if not self.token_valid(header(request, TOKEN_HEADER)):
            return 400, INVALID_TOKEN
        known = self.dingtalk_robot_codes
        robot_code = request.query.get("robotCode", "")
        if not robot_code or (known is not None and robot_code not in known):
            return 400, {"code": "resource.not.found", "message": "robot 不存在"}
        return bad_request("processQueryKey 不存在")

    def dingtalk_card_instance(self, request: Recorded) -> tuple[int, Any]:
        """A card made from a template and delivered nowhere."""
        if not self.token_valid(header(request, TOKEN_HEADER)):
            return 400, INVALID_TOKEN
        body = request.json or {}
        known = self.dingtalk_card_templates
        template = body.get("cardTemplateId")
        if not template or not body.get("outTrackId"):
            return bad_request("cardTemplateId and outTrackId are required")
        if known is not None and template not in known:
            return bad_request("cardTemplateId 不存在")
        return 200, {"success": True, "result": body["outTrackId"]}

    def dingtalk_card_streaming(self, request: Recorded) -> tuple[int, Any]:
        answer = self._card_check(request, ("guid", "key"))
        if answer is None and (request.json or {}).get("isFinalize"):
            self.deliver("dingtalk", request.json)
        return answer or (200, {"success": True, "result": True})

    def dingtalk_card_update(self, request: Recorded) -> tuple[int, Any]:
        answer = self._card_check(request, ("cardData",))
        return answer or (200, {"success": True, "result": True})

    def _card_check(self, request: Recorded, required: tuple[str, ...]) -> tuple[int, Any] | None:
        """The error answer for a card call, or None when it is acceptable."""
        if not self.token_valid(header(request, TOKEN_HEADER)):
            return 400, INVALID_TOKEN  # DingTalk says so with a 400, not a 401
        body = request.json or {}
        if any(not body.get(name) for name in required):
            return bad_request(f"{', '.join(required)} required")
        created = {
            (r.json or {}).get("outTrackId")
            for r in self.received("/v1.0/card/instances/createAndDeliver")
        }
        if body.get("outTrackId") not in created:
            return 404, {"code": "card.notFound", "message": "card instance not found"}
        return None

    ROUTES = {
        ("POST", "/robot/sendBySession"): dingtalk_send_by_session,
        ("POST", "/v1.0/oauth2/accessToken"): dingtalk_access_token,
        ("POST", "/v1.0/robot/groupMessages/send"): dingtalk_robot_send,
        ("POST", "/v1.0/robot/oToMessages/batchSend"): dingtalk_robot_send,
        ("POST", "/v1.0/card/instances/createAndDeliver"): dingtalk_card_create,
        ("PUT", "/v1.0/card/streaming"): dingtalk_card_streaming,
        ("PUT", "/v1.0/card/instances"): dingtalk_card_update,
        ("POST", "/v1.0/card/instances"): dingtalk_card_instance,
        ("GET", "/v1.0/robot/oToMessages/readStatus"): dingtalk_read_status,
    }
