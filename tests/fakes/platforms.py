"""One fake of the platforms' APIs, a real HTTP server: WeCom (more modes plug in here).

Tests point WECOM_API_BASE (and the other *_API_BASE settings) at `.url`, so the
product's own request code runs unchanged.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from .http import FakeServer, Recorded


class FakePlatforms(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self._counter = itertools.count(1)
        self._state_lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests.clear()
        self.valid_tokens: set[str] = set()
        self.fail_next: list[tuple[int, Any]] = []  # canned (status, body) answers, consumed first
        self.delivered: list[tuple[str, dict[str, Any]]] = []  # (platform key, accepted body)

    def route(self, request: Recorded) -> tuple[int, Any]:
        with self._state_lock:
            if self.fail_next:
                return self.fail_next.pop(0)
        handler = self.ROUTES.get((request.method, request.path))
        if handler is None:
            return 404, {"errcode": 404, "errmsg": "no such fake endpoint"}
        return handler(self, request)

    def _new_token(self) -> str:
        token = f"token-{next(self._counter)}"
        with self._state_lock:
            self.valid_tokens.add(token)
        return token

    def expire_all_tokens(self) -> None:
        """What the platform does when it revokes tokens early."""
        with self._state_lock:
            self.valid_tokens.clear()

    # --- WeCom -----------------------------------------------------------------------
    def wecom_gettoken(self, request: Recorded) -> tuple[int, Any]:
        if not request.query.get("corpid") or not request.query.get("corpsecret"):
            return 200, {"errcode": 40013, "errmsg": "invalid corpid"}
        return 200, {"errcode": 0, "errmsg": "ok", "access_token": self._new_token(),
                     "expires_in": 7200}

    def wecom_send(self, request: Recorded) -> tuple[int, Any]:
        if request.query.get("access_token") not in self.valid_tokens:
            return 200, {"errcode": 42001, "errmsg": "access_token expired"}
        content = (request.json or {}).get("text", {}).get("content", "")
        if len(content.encode()) > 2048:
            return 200, {"errcode": 44004, "errmsg": "content exceed max length"}
        self._deliver("wecom", request.json)
        return 200, {"errcode": 0, "errmsg": "ok", "msgid": f"msg-{next(self._counter)}"}

    def _deliver(self, platform: str, body: dict[str, Any]) -> None:
        with self._state_lock:
            self.delivered.append((platform, body))

    def messages(self, platform: str) -> list[dict[str, Any]]:
        """The message bodies the fake accepted for this platform, in order."""
        with self._state_lock:
            return [body for key, body in self.delivered if key == platform]

    ROUTES = {
        ("GET", "/cgi-bin/gettoken"): wecom_gettoken,
        ("POST", "/cgi-bin/message/send"): wecom_send,
    }
