"""Feishu / Lark (飞书) app bot, event subscription v2 (platform key `feishu`)."""

from .adapter import FeishuAdapter

__all__ = ["FeishuAdapter"]
