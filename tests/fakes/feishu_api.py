"""Feishu's endpoints on the fake platform server."""

from __future__ import annotations


class FeishuAPI:
    ROUTES: dict = {}
