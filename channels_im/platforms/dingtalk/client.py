"""DingTalk's OpenAPI (api.dingtalk.com) as one app, with its access token cached."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from ..base import DeliveryError, TokenCache, http_json, secret_id

# What the OpenAPI answers for a revoked or expired access token (and for missing scopes,
# which one refresh cannot fix, so the second answer stands).
TOKEN_STATUSES = {401, 403}


class DingTalkClient:
    """Calls the OpenAPI with `x-acs-dingtalk-access-token`; every process shares the token."""

    def __init__(self, app_key: str, app_secret: str):
        self.app_key = app_key
        self._app_secret = app_secret
        self.tokens = TokenCache(f"dingtalk:{app_key}:{secret_id(app_secret)}", self._fetch_token)

    def call(self, method: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One API call; on 401/403 the token is refreshed once and the call resent."""
        try:
            return self._call(method, path, payload)
        except DeliveryError as exc:
            if exc.code not in TOKEN_STATUSES:
                raise
        self.tokens.invalidate()
        return self._call(method, path, payload)

    def _call(self, method: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        headers = {"x-acs-dingtalk-access-token": self.tokens.get()}
        return http_json(method, settings.DINGTALK_API_BASE + path, json=payload, headers=headers)

    def _fetch_token(self) -> tuple[str, int]:
        body = http_json(
            "POST",
            settings.DINGTALK_API_BASE + "/v1.0/oauth2/accessToken",
            json={"appKey": self.app_key, "appSecret": self._app_secret},
        )
        if not body.get("accessToken"):
            raise DeliveryError("DingTalk accessToken: no token in the answer", permanent=True)
        return body["accessToken"], int(body.get("expireIn", 7200))
