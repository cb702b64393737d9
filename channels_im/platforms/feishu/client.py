"""Feishu's open API as one app, with its tenant_access_token cached (spec §3.4)."""

from __future__ import annotations

from typing import Any

from ..client import ApiClient


class FeishuClient(ApiClient):
    """`/open-apis/*` calls with a Bearer token; errors are `code` in the body, often
    with HTTP 400."""

    base_setting = "FEISHU_API_BASE"
    label = "Feishu"
    code_fields = ("code",)
    message_fields = ("msg",)
    # Token missing (99991661), invalid or expired (99991663, 99991664), and the other
    # tenant-token refusals (99991665, 99991666, 99991668).
    token_errors = frozenset({99991661, 99991663, 99991664, 99991665, 99991666, 99991668})
    # Frequency limits: worth retrying later. Every other code stays wrong on a retry.
    transient_errors = frozenset({99991402, 11020, 11021, 230020})
    token_header = ("Authorization", "Bearer {}")
    token_path = "/open-apis/auth/v3/tenant_access_token/internal"
    token_fields = ("tenant_access_token", "expire")

    def token_request(self) -> dict[str, Any]:
        return {"json": {"app_id": self.app_id, "app_secret": self.app_secret}}

    def bot_open_id(self) -> str:
        """The app's bot's own open_id (GET bot/v3/info); "" when the answer names none
        (an app without the bot capability). Raises DeliveryError."""
        bot = self.call("GET", "/open-apis/bot/v3/info").get("bot")
        open_id = bot.get("open_id") if isinstance(bot, dict) else None
        return open_id if isinstance(open_id, str) else ""
