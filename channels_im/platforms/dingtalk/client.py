"""DingTalk's OpenAPI (api.dingtalk.com) as one app, with its access token cached (spec §2.4)."""

from __future__ import annotations

from typing import Any

from ..client import ApiClient


class DingTalkClient(ApiClient):
    """Calls with `x-acs-dingtalk-access-token`. The OpenAPI answers errors as HTTP 4xx
    with `{"code": "…", "message": …}`; the older oapi host and session webhooks answer
    HTTP 200 with `{"errcode": N, "errmsg": …}`. Both spellings are read."""

    base_setting = "DINGTALK_API_BASE"
    label = "DingTalk"
    code_fields = ("code", "errcode")
    message_fields = ("message", "errmsg")
    # An invalid or expired token: the OpenAPI's code (with HTTP 400 or 401), oapi's 40014.
    token_errors = frozenset({"InvalidAuthentication", 40014})
    # Session webhook: "send too fast". (Throttled OpenAPI calls answer HTTP 429.)
    transient_errors = frozenset({130101})
    token_header = ("x-acs-dingtalk-access-token", "{}")
    token_path = "/v1.0/oauth2/accessToken"
    token_fields = ("accessToken", "expireIn")

    def token_request(self) -> dict[str, Any]:
        return {"json": {"appKey": self.app_id, "appSecret": self.app_secret}}
