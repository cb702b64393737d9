"""DingTalk (钉钉) enterprise internal robot, HTTP mode (platform key `dingtalk`)."""

from .adapter import DingTalkAdapter

__all__ = ["DingTalkAdapter"]
