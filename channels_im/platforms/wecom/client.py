"""WeCom's server API (qyapi) as one app, with its access token cached (spec §1.4)."""

from __future__ import annotations

from typing import Any

from ..client import ApiClient


class WeComClient(ApiClient):
    """`/cgi-bin/*` calls with `?access_token=`; errors are `errcode` in a 200 body."""

    base_setting = "WECOM_API_BASE"
    label = "WeCom"
    code_fields = ("errcode",)
    message_fields = ("errmsg",)
    # invalid access_token, access_token expired, invalid credential.
    token_errors = frozenset({40014, 42001, 40001})
    # system busy, API frequency limits.
    transient_errors = frozenset({-1, 45009, 45033, 45011})
    token_path = "/cgi-bin/gettoken"
    token_fields = ("access_token", "expires_in")

    def token_request(self) -> dict[str, Any]:
        return {"params": {"corpid": self.app_id, "corpsecret": self.app_secret}}
