"""The contract every IM platform module implements, and the one door for outbound HTTP.

A platform module turns a callback request into a platform-neutral result and sends a
reply back. It knows nothing of Celery, the database or the model.
"""

from __future__ import annotations

import hashlib
import json as json_module
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from assistant import http

if TYPE_CHECKING:
    from channels_im.models import Bot

logger = logging.getLogger(__name__)


class SignatureInvalid(Exception):
    """The request is forged, stale or signed with another key: answer 401/403."""


class BadPayload(Exception):
    """The body cannot be decrypted or parsed: answer 400."""


class DeliveryError(Exception):
    """Sending failed. Transient errors are retried; permanent ones are recorded on the bot."""

    def __init__(self, message: str, *, permanent: bool = False, code: str | int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.code = code


@dataclass(frozen=True)
class Challenge:
    """A URL-verification handshake; `body` is answered as is."""

    body: str
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Ignored:
    """A genuine callback we choose not to act on (an image, an event): answer 200."""

    reason: str


@dataclass(frozen=True)
class PlatformCallback:
    """A callback the platform module answers by itself (a stream poll …): the view only acks it.

    Platform modules subclass it with the fields their `ack` needs.
    """


@dataclass(frozen=True)
class InboundMessage:
    """One user message, whatever platform it came from."""

    external_id: str  # the platform's message id: the dedupe key
    sender: str  # the platform's user id
    chat: str  # the group id; for 1:1 chats the sender's id
    text: str
    is_group: bool = False
    # What send() needs later to answer this message (a message id, a webhook URL …).
    reply_context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundReply:
    """One answer to deliver; `key` is stable across retries (an idempotency key)."""

    key: str
    text: str
    recipient: str
    is_group: bool
    reply_context: dict[str, Any]
    # Parts of a split answer an earlier attempt delivered, and how to record one more.
    parts_sent: int = 0
    on_part_sent: Callable[[int], None] = field(default=lambda count: None, compare=False)

    def send_parts(self, parts: list[str], send_one: Callable[[int, str], None]) -> None:
        """Send the parts in order, skipping those already delivered: a retry after part 2
        failed must not show part 1 twice."""
        for index, part in enumerate(parts):
            if index < self.parts_sent:
                continue
            send_one(index, part)
            if index + 1 < len(parts):  # after the last part, the delivery itself is recorded
                self.on_part_sent(index + 1)


@dataclass(frozen=True)
class CredentialField:
    name: str  # the key in apply_config files, shown as the admin label
    required: bool = True
    secret: bool = True
    hint: str = ""  # where the platform's console shows it (translatable)


CallbackResult = Challenge | Ignored | InboundMessage | PlatformCallback


class LiveReply:
    """A message that grows in the chat while the model writes (a streaming card …).

    The worker calls `start` at the first token and `update` with the whole text so far,
    at most once per `interval` seconds. The final text still goes through the adapter's
    `send`, which finishes the live message using what `start` returned (kept on the row
    in `reply_context`), so delivery stays one exactly-once step.
    """

    interval: ClassVar[float] = 0.5

    def start(self, text: str) -> dict[str, Any]:
        """Show the first text; return what `send` needs to find this live message."""
        raise NotImplementedError

    def update(self, text: str) -> None:
        """Replace the shown text with `text` (everything generated so far)."""
        raise NotImplementedError


class PlatformAdapter:
    """Base class of the platform modules; one instance serves one bot."""

    key: ClassVar[str]
    label: ClassVar[str]
    credential_fields: ClassVar[tuple[CredentialField, ...]] = ()
    # Longest text one outbound message may carry, and how it is measured.
    max_message_bytes: ClassVar[int] = 2048
    # The chat shows a placeholder for every message (a "thinking" stream), so even a
    # message we refuse must get an answer, or the placeholder never resolves.
    answers_every_message: ClassVar[bool] = False

    def __init__(self, bot: Bot):
        self.bot = bot
        self.credentials: dict[str, Any] = bot.credentials or {}

    @classmethod
    def missing_credentials(cls, credentials: dict[str, Any]) -> list[str]:
        return [f.name for f in cls.credential_fields if f.required and not credentials.get(f.name)]

    def verify(self, request: HttpRequest) -> None:
        """Check the request's signature and timestamp; raise SignatureInvalid if they fail."""
        raise NotImplementedError

    def parse(self, request: HttpRequest) -> CallbackResult:
        """Decrypt and parse a verified request; raise BadPayload if it cannot be read."""
        raise NotImplementedError

    def ack(self, result: CallbackResult) -> HttpResponse:
        """The response body the platform expects for this result."""
        raise NotImplementedError

    def send(self, reply: OutboundReply) -> None:
        """Deliver the reply through the platform's API; raise DeliveryError on failure."""
        raise NotImplementedError

    def live(self, reply: OutboundReply) -> LiveReply | None:
        """A live channel for this answer, or None: then only the final text is sent."""
        return None


def json_object(raw: bytes | str) -> dict[str, Any]:
    """A JSON object, or BadPayload: broken, hostile or non-object JSON is never a 500."""
    try:
        value = json_module.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadPayload(f"body is not JSON: {type(exc).__name__}") from exc
    if not isinstance(value, dict):
        raise BadPayload("body is not a JSON object")
    return value


def http_json(
    method: str,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
    coded_4xx: bool = False,
) -> dict[str, Any]:
    """Every platform API call goes through here: one timeout, one error taxonomy.

    Connection errors, timeouts, 429 and 5xx are transient; other 4xx are permanent.
    Platform-level error codes inside a 200 body are the caller's to interpret, and so
    are those of a JSON 4xx body with `coded_4xx` (Feishu answers "token expired" or
    "rate limited" as HTTP 400 with its code in the body).
    """
    try:
        response = http.session().request(
            method, url, params=params, json=json, headers=headers, timeout=settings.IM_HTTP_TIMEOUT
        )
    except requests.RequestException as exc:
        raise DeliveryError(f"{method} {_path(url)}: {type(exc).__name__}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise DeliveryError(f"{method} {_path(url)}: HTTP {response.status_code}")
    coded = coded_4xx and "json" in response.headers.get("Content-Type", "")
    if response.status_code >= 400 and not coded:
        raise DeliveryError(
            f"{method} {_path(url)}: HTTP {response.status_code}",
            permanent=True,
            code=response.status_code,
        )
    try:
        return response.json()
    except ValueError as exc:
        raise DeliveryError(f"{method} {_path(url)}: response is not JSON") from exc


def _path(url: str) -> str:
    """The URL without its query string, which may carry an access token."""
    return url.split("?", 1)[0]


def secret_id(secret: str) -> str:
    """A short, non-reversible name for a secret: cache keys change when it rotates."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class TokenCache:
    """An access token shared by every process through the cache, refreshed before expiry,
    and remembered by each process until then so that a send costs no cache round trip."""

    # Refresh this many seconds before the platform's stated expiry.
    EARLY_SECONDS = 300
    # key -> (token, when to refresh it as a time.time()), this process's copy.
    _remembered: ClassVar[dict[str, tuple[str, float]]] = {}

    def __init__(self, key: str, fetch: Callable[[], tuple[str, int]]):
        self.key = f"im:access-token:{key}"
        self.fetch = fetch

    def get(self) -> str:
        hit = self._remembered.get(self.key)
        if not _fresh(hit):
            hit = cache.get(self.key)  # another process may have refreshed it already
        if not _fresh(hit):
            token, expires_in = self.fetch()
            lifetime = max(expires_in - self.EARLY_SECONDS, 60)
            hit = (token, time.time() + lifetime)
            cache.set(self.key, hit, lifetime)
        self._remembered[self.key] = hit
        return hit[0]

    def invalidate(self) -> None:
        """The platform refused the token: forget it here and for every process."""
        self._remembered.pop(self.key, None)
        cache.delete(self.key)

    @classmethod
    def forget_all(cls) -> None:
        cls._remembered.clear()


def _fresh(hit: tuple[str, float] | None) -> bool:
    return hit is not None and hit[1] > time.time()
