"""The one door for outbound platform HTTP, and the base of the token-authenticated clients.

`http_json` sends every platform request (one timeout, one error taxonomy). `ApiClient`
is what WeCom's, DingTalk's and Feishu's open APIs share: an access token cached for
every process, one refresh when the platform says the token is no longer valid, and the
platform's error codes mapped to `DeliveryError(permanent=…)` from a table per platform.
Models: healthchecks' `HttpTransport.raise_for_response`, DRF's `SimpleRateThrottle`
(class attributes configure; a few hooks do the rest).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from functools import cached_property
from typing import Any, ClassVar

import requests
from django.conf import settings
from django.core.cache import cache

from common import http

from .base import DeliveryError

ErrorCode = int | str


def http_json(
    method: str,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
    error_code: Callable[[dict[str, Any]], ErrorCode | None] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Send one request and return its JSON object body; raise DeliveryError otherwise.

    `timeout` (seconds, to connect and for each read) defaults to IM_HTTP_TIMEOUT.

    Connection errors, timeouts, 429 and 5xx are transient; other 4xx are permanent, with
    the HTTP status as the error's `code`. Given the platform's `error_code` reader, a 4xx
    whose JSON body carries a platform code is returned instead, for the caller to map
    (Feishu and DingTalk answer "token expired" or "rate limited" as HTTP 400 with a code
    in the body). Codes inside a 200 body are always the caller's to interpret.
    """
    where = f"{method} {_path(url)}"
    try:
        response = http.session().request(
            method,
            url,
            params=params,
            json=json,
            headers=headers,
            timeout=timeout or settings.IM_HTTP_TIMEOUT,
        )
    except requests.RequestException as exc:
        raise DeliveryError(f"{where}: {type(exc).__name__}") from exc
    status = response.status_code
    if status == 429 or status >= 500:
        raise DeliveryError(f"{where}: HTTP {status}")
    try:
        body = response.json()
    except ValueError:
        body = None
    coded = isinstance(body, dict) and error_code is not None and error_code(body) is not None
    if status >= 400 and not coded:
        raise DeliveryError(f"{where}: HTTP {status}", permanent=True, code=status)
    if not isinstance(body, dict):
        raise DeliveryError(f"{where}: response is not a JSON object")
    return body


def _path(url: str) -> str:
    """The URL without its query string, which may carry an access token."""
    return url.split("?", 1)[0]


def secret_id(secret: str) -> str:
    """A short, non-reversible name for a secret: cache keys change when it rotates."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class TokenCache:
    """An access token shared by every process through the cache: fetched by one process
    at a time, refreshed before expiry, and remembered by each process until then so that
    a send costs no cache round trip."""

    # Refresh this many seconds before the platform's stated expiry.
    EARLY_SECONDS = 300
    # Seconds between two looks of a process waiting for another's fetch.
    WAIT_SECONDS = 0.05
    # key -> (token, when to refresh it as a time.time()), this process's copy.
    _remembered: ClassVar[dict[str, tuple[str, float]]] = {}

    def __init__(self, key: str, fetch: Callable[[], tuple[str, int]]):
        self.key = f"im:access-token:{key}"
        self.fetch = fetch

    def get(self) -> str:
        """The token; fetched (`fetch() -> (token, lifetime in s)`) only when none is fresh."""
        hit = self._remembered.get(self.key)
        if not _fresh(hit):
            hit = cache.get(self.key)  # another process may have refreshed it already
        if hit is None or not _fresh(hit):
            hit = self._fetch_once()
        self._remembered[self.key] = hit
        return hit[0]

    def _fetch_once(self) -> tuple[str, float]:
        """A new token, fetched here unless another process is fetching one: then its
        token, once it is in the cache. Processes that find the token due at the same
        moment (all of them, when it expires or is refused) would otherwise each call
        the platform's token endpoint, which limits how often it may be called.

        A fetch that fails frees the lock, and the next waiter fetches; one whose process
        died holds it for as long as a fetch may take (connect and read, IM_HTTP_TIMEOUT
        each). Raises DeliveryError as `fetch` does."""
        lock = f"{self.key}:fetching"
        while not cache.add(lock, 1, math.ceil(2 * settings.IM_HTTP_TIMEOUT)):
            time.sleep(self.WAIT_SECONDS)
            hit = cache.get(self.key)
            if hit is not None and _fresh(hit):
                return hit
        try:
            hit = cache.get(self.key)  # fetched by the lock's last holder as we looked
            if hit is not None and _fresh(hit):
                return hit
            token, expires_in = self.fetch()
            lifetime = max(expires_in - self.EARLY_SECONDS, 60)
            hit = (token, time.time() + lifetime)
            cache.set(self.key, hit, lifetime)
            return hit
        finally:
            cache.delete(lock)

    def invalidate(self, token: str) -> None:
        """The platform refused `token`: forget it here, and for every process unless
        another has replaced it already. Each process that still remembered the refused
        token would otherwise throw away the one fetched after it, and fetch another."""
        self._remembered.pop(self.key, None)
        shared = cache.get(self.key)
        if shared is not None and shared[0] == token:
            cache.delete(self.key)

    @classmethod
    def forget_all(cls) -> None:
        cls._remembered.clear()


def _fresh(hit: tuple[str, float] | None) -> bool:
    return hit is not None and hit[1] > time.time()


class OwnToken(TokenCache):
    """A token one client fetched for itself and shares with no one (see
    `ApiClient.use_own_token`)."""

    def __init__(self, token: str):
        self.token = token

    def get(self) -> str:
        return self.token

    def invalidate(self, token: str) -> None:
        """Nothing shared to forget; a refused own token is the caller's finding."""


class ApiClient:
    """A platform's open API called as one app with a cached access token.

    Subclasses are tables (how the token travels, where errors are read, which codes mean
    what) plus `token_request`; `call` does the rest: send with the token, and on one of
    `token_errors` (whatever the HTTP status) refresh the token once and send again; then
    any error code becomes a DeliveryError, transient only for `transient_errors`.
    """

    label: ClassVar[str]  # the platform's name in error messages and cache keys
    base_setting: ClassVar[str]  # the setting naming the API's default base URL
    # Answer fields carrying an error code, and its text; the first one set counts.
    code_fields: ClassVar[tuple[str, ...]]
    message_fields: ClassVar[tuple[str, ...]]
    # The platform's "access token invalid or expired" codes.
    token_errors: ClassVar[frozenset[ErrorCode]] = frozenset()
    # Codes worth retrying later (busy, frequency limits); every other code is permanent.
    transient_errors: ClassVar[frozenset[ErrorCode]] = frozenset()
    # How a call carries the token: a header (name, value with "{}" for the token), or
    # else a query parameter.
    token_header: ClassVar[tuple[str, str] | None] = None
    token_param: ClassVar[str] = "access_token"
    # Where a new token is asked for, and the answer's (token, lifetime in s) fields.
    token_path: ClassVar[str]
    token_fields: ClassVar[tuple[str, str]]
    # Seconds each request may take (connect, and each read); None: IM_HTTP_TIMEOUT.
    timeout: float | None = None

    def __init__(self, app_id: str, app_secret: str, *, base: str = ""):
        """`base` overrides the API's base URL setting (Lark's, for a Feishu app)."""
        self.base = (base or getattr(settings, self.base_setting)).rstrip("/")
        self.app_id = app_id
        self.app_secret = app_secret

    def token_request(self) -> dict[str, Any]:
        """http_json's keywords asking for a new token: `params` (a GET) or `json` (a POST)."""
        raise NotImplementedError

    def call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One API call with the token; the answer's JSON object, or DeliveryError."""
        token = self.tokens.get()
        body = self._send(method, path, payload, params or {}, token)
        if self.error_code(body) in self.token_errors:
            self.tokens.invalidate(token)
            body = self._send(method, path, payload, params or {}, self.tokens.get())
        self.raise_for_code(path, body)
        return body

    def _send(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        params: dict[str, Any],
        token: str,
    ) -> dict[str, Any]:
        headers = None
        if self.token_header is None:
            params = {**params, self.token_param: token}
        else:
            name, value = self.token_header
            headers = {name: value.format(token)}
        return http_json(
            method,
            self.base + path,
            params=params or None,
            json=payload,
            headers=headers,
            error_code=self.error_code,
            timeout=self.timeout,
        )

    @classmethod
    def raise_for_code(cls, path: str, body: dict[str, Any]) -> None:
        """DeliveryError for an answer that carries an error code; nothing for success.

        A class method: the platform's webhooks (no token) answer with the same codes.
        """
        code = cls.error_code(body)
        if code is None:
            return
        text = next((body[f] for f in cls.message_fields if body.get(f)), "")
        message = f"{cls.label} {path}: code {code} {str(text)[:200]}"
        raise DeliveryError(message, permanent=code not in cls.transient_errors, code=code)

    @classmethod
    def error_code(cls, body: dict[str, Any]) -> ErrorCode | None:
        """The platform's error code in an answer, or None when it reports success (0)."""
        return next((body[f] for f in cls.code_fields if body.get(f)), None)

    @cached_property
    def tokens(self) -> TokenCache:
        key = f"{self.label.lower()}:{self.app_id}:{secret_id(self.app_secret)}"
        return TokenCache(key, self.fetch_token)

    def fetch_token(self) -> tuple[str, int]:
        """A new access token and its lifetime in seconds; raise DeliveryError on failure."""
        request = self.token_request()
        method = "POST" if "json" in request else "GET"
        url = self.base + self.token_path
        body = http_json(method, url, error_code=self.error_code, timeout=self.timeout, **request)
        self.raise_for_code(self.token_path, body)
        token_field, lifetime_field = self.token_fields
        token = body.get(token_field)
        if not token or not isinstance(token, str):
            message = f"{self.label} {self.token_path}: no access token in the answer"
            raise DeliveryError(message, permanent=True)
        return token, int(body.get(lifetime_field) or 7200)

    def use_own_token(self) -> None:
        """Fetch a new token and use it for this client's calls only, never reading or
        writing the shared cache: a self-test checks the credentials themselves, and
        whatever they get must not touch the token the bot's deliveries use.
        Raises DeliveryError as `fetch_token` does."""
        token, _lifetime = self.fetch_token()
        self.tokens = OwnToken(token)
