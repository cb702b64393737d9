"""DingTalk's endpoints on the fake platform server."""

from __future__ import annotations


class DingTalkAPI:
    ROUTES: dict = {}
