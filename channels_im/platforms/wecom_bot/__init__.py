"""WeCom smart robot (企业微信智能机器人), API mode (platform key `wecom_bot`)."""

from .adapter import WeComBotAdapter

__all__ = ["WeComBotAdapter"]
