"""WeCom (企业微信) self-built app (platform key `wecom`); its envelope crypto serves the
smart robot and DingTalk's encrypted events too."""

from .adapter import WeComAppAdapter

__all__ = ["WeComAppAdapter"]
