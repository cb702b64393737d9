"""Registry of platform modules: one line per platform key.

Adding a platform is one new package and one line here; `Bot.platform` choices follow.
Every platform is a package shaped alike: `adapter.py` (verify, parse, ack, send),
`client.py` (its API, on `client.ApiClient`), `crypto.py` (its signatures and envelope)
and `checks.py` (its part of a bot's self-test, on `checks.py` here); the WeCom smart robot
needs no token and shares WeCom's envelope and checks, so it has `adapter.py` and
`stream.py` (what its streams show).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    from .base import PlatformAdapter

PLATFORMS: dict[str, str] = {
    "wecom": "channels_im.platforms.wecom.WeComAppAdapter",
    "dingtalk": "channels_im.platforms.dingtalk.DingTalkAdapter",
    "wecom_bot": "channels_im.platforms.wecom_bot.WeComBotAdapter",
    "feishu": "channels_im.platforms.feishu.FeishuAdapter",
    "api": "channels_im.platforms.api.ApiAdapter",
}


@cache
def adapter_class(platform: str) -> type[PlatformAdapter]:
    return import_string(PLATFORMS[platform])


def platform_choices() -> list[tuple[str, StrOrPromise]]:
    return [(key, adapter_class(key).label) for key in PLATFORMS]
