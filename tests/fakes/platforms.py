"""One fake of every platform's API, a real HTTP server.

Tests point WECOM_API_BASE, DINGTALK_API_BASE, DINGTALK_OAPI_BASE and FEISHU_API_BASE at
`.url`, so the product's own request code runs unchanged. Each platform's endpoints live
in their own mixin module; this class only combines them.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from .dingtalk_api import DingTalkAPI
from .feishu_api import FeishuAPI
from .http import FakeServer, Recorded
from .wecom_api import WeComAPI


class FakePlatforms(WeComAPI, DingTalkAPI, FeishuAPI, FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self._counter = itertools.count(1)
        self._state_lock = threading.Lock()
        self.routes = {**WeComAPI.ROUTES, **DingTalkAPI.ROUTES, **FeishuAPI.ROUTES}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
        self.valid_tokens: set[str] = set()
        self.fail_next: list[tuple[int, Any]] = []  # canned (status, body) answers, consumed first
        # Paths whose next request is carried out but answered 502, as by a proxy that lost
        # the platform's answer: the caller cannot tell whether it went.
        self.lose_answer: list[str] = []
        self.delivered: list[tuple[str, dict[str, Any]]] = []  # (platform key, accepted body)
        # App secrets every platform's token endpoint refuses, as for a mistyped secret.
        self.bad_secrets: set[str] = set()
        # Seconds to wait before answering a path: a platform API that answers slowly.
        self.slow_paths: dict[str, float] = {}
        self.wecom_reset()
        self.feishu_reset()
        self.dingtalk_reset()

    def route(self, request: Recorded) -> tuple[int, Any]:
        time.sleep(self.slow_paths.get(request.path, 0))
        with self._state_lock:
            if self.fail_next:
                return self.fail_next.pop(0)
        answer = self._route(request)
        with self._state_lock:
            if request.path in self.lose_answer:
                self.lose_answer.remove(request.path)
                return 502, "<html>502 Bad Gateway</html>"
        return answer

    def _route(self, request: Recorded) -> tuple[int, Any]:
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            for (method, prefix), prefixed in self.routes.items():
                if (
                    prefix.endswith("/*")
                    and request.method == method
                    and request.path.startswith(prefix[:-1])
                ):
                    return prefixed(self, request)
            return 404, {"errcode": 404, "errmsg": "no such fake endpoint"}
        return handler(self, request)

    def new_token(self) -> str:
        token = f"token-{next(self._counter)}"
        with self._state_lock:
            self.valid_tokens.add(token)
        return token

    def token_valid(self, token: str | None) -> bool:
        with self._state_lock:
            return token in self.valid_tokens

    def next_id(self) -> int:
        return next(self._counter)

    def expire_all_tokens(self) -> None:
        """What a platform does when it revokes tokens early."""
        with self._state_lock:
            self.valid_tokens.clear()

    def deliver(self, platform: str, body: dict[str, Any]) -> None:
        with self._state_lock:
            self.delivered.append((platform, body))

    def messages(self, platform: str) -> list[dict[str, Any]]:
        """The message bodies the fake accepted for this platform key, in order."""
        with self._state_lock:
            return [body for key, body in self.delivered if key == platform]
