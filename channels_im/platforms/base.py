"""The contract every IM platform module implements, and the types that cross it.

A platform module turns a callback request into a platform-neutral result and sends a
reply back. It knows nothing of Celery, the database or the model. Outbound HTTP and
access tokens are `client.py`'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    from channels_im.models import Bot
    from common.selftest import Finding


_NOT_A_NUMBER = _("Enter a whole number, e.g. 1000002: digits only.")


class SignatureInvalid(Exception):
    """The request is forged, stale or signed with another key: answer 401/403."""


class StaleRequest(SignatureInvalid):
    """The request's timestamp lies outside the window: an old request replayed, or a
    clock far off."""


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
class Recalled:
    """The sender took a message back (Feishu's recall): its answer, if one is still being
    written, is stopped. Answer 200."""

    external_id: str  # the recalled message's id, as its InboundMessage.external_id


@dataclass(frozen=True)
class PlatformCallback:
    """A callback the platform module answers by itself (a stream poll …): the view only acks it.

    Platform modules subclass it with the fields their `ack` needs.
    """


TEXT = "text"  # InboundMessage.kind of everything the bot can read


@dataclass(frozen=True)
class InboundMessage:
    """One user message, whatever platform it came from, checked to be storable.

    Built from a signed callback, it may still carry what no database column can hold: an
    identifier longer than its column, a NUL or a lone surrogate (valid JSON escapes that
    PostgreSQL refuses). Such an identifier is a BadPayload (400), raised here, before
    anything is stored; text is cleaned instead, since neither is something a person
    wrote: NUL dropped, a lone surrogate shown as U+FFFD.
    """

    external_id: str  # the platform's message id: the dedupe key
    sender: str  # the platform's user id
    chat: str  # the group id; for 1:1 chats the sender's id
    # The question as text: a rich message's text, a voice message's transcript.
    text: str
    is_group: bool = False
    # What send() needs later to answer this message (a message id, a webhook URL …).
    reply_context: dict[str, Any] = field(default_factory=dict)
    # TEXT, or the platform's name of a type the bot cannot read ("image", "file" …): a
    # person who sent one to the bot is told what it can read.
    kind: str = TEXT

    def __post_init__(self) -> None:
        for name in ("external_id", "sender", "chat"):
            check_identifier(name, getattr(self, name))
        # Frozen: the cleaned values replace the given ones once, here.
        object.__setattr__(self, "text", storable(self.text))
        object.__setattr__(self, "reply_context", storable(self.reply_context))


# The longest identifier the columns that store them take (message id, sender, chat).
MAX_IDENTIFIER_CHARS = 200
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def check_identifier(name: str, value: str) -> None:
    """Raise BadPayload unless `value` fits its column: at most MAX_IDENTIFIER_CHARS
    characters, none of them a control character or a lone surrogate."""
    if len(value) > MAX_IDENTIFIER_CHARS:
        raise BadPayload(f"{name} is longer than {MAX_IDENTIFIER_CHARS} characters")
    if not value.isprintable() or _UNSTORABLE.search(value):
        raise BadPayload(f"{name} contains characters that are not text")


def storable(value: Any) -> Any:
    """`value` (text, or JSON made of it) as the database stores it: NUL dropped, lone
    surrogates replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


@dataclass(frozen=True)
class OutboundReply:
    """One answer to deliver; `key` is stable across retries (an idempotency key)."""

    key: str
    text: str
    recipient: str
    is_group: bool
    reply_context: dict[str, Any]
    # What LiveReply.start returned for this answer (a card id …); empty: no live message.
    live: dict[str, Any] = field(default_factory=dict)
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


# Numeric ids are whole numbers the platforms' JSON APIs take as signed 64-bit integers.
_MAX_NUMERIC_ID = 2**63 - 1


@dataclass(frozen=True)
class CredentialField:
    name: str  # the key in apply_config files, shown as the admin label
    required: bool = True
    secret: bool = True
    hint: StrOrPromise = ""  # where the platform's console shows it (translatable)
    # The console shows it as a number (WeCom's AgentId), so people write it as one.
    numeric: bool = False

    def clean(self, value: object) -> object:
        """The value as stored. A numeric field takes a whole number or a string of digits
        (spaces around, full-width digits too) and stores the plain digits, "1000002";
        blank stays "" (required-ness is checked on all credentials at once). Raises
        ValidationError for `true`, 1.5, "abc", -1 …; other fields are returned as given.
        """
        if not self.numeric or value == "":
            return value
        text = value.strip() if isinstance(value, str) else None
        if text is not None and text.isdecimal():
            value = int(text)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(_NOT_A_NUMBER, code="invalid")
        if not 0 <= value <= _MAX_NUMERIC_ID:
            raise ValidationError(_NOT_A_NUMBER, code="invalid")
        return str(value)

    @classmethod
    def optional(cls, name: str, hint: StrOrPromise, *, secret: bool = False) -> CredentialField:
        """A credential the bot works without; most such are identifiers, not secrets."""
        return cls(name, required=False, secret=secret, hint=hint)


CallbackResult = Challenge | Ignored | InboundMessage | Recalled | PlatformCallback


class LiveReply:
    """A message that grows in the chat while the model writes (a streaming card …).

    The worker calls `start` at the first token and `update` with the whole text so far,
    at most once per `interval` seconds. The final text still goes through the adapter's
    `send`, which finishes the live message using what `start` returned (kept on the row
    in the outbound reply's `live`), so delivery stays one exactly-once step.
    """

    interval: ClassVar[float] = 0.5
    # Whether it may show a "thinking" status before the answer (a chat shows it; an
    # API event stream is the answer's text only).
    shows_thinking: ClassVar[bool] = True

    def start(self, text: str) -> dict[str, Any]:
        """Show the first text; return what `send` needs to find this live message."""
        raise NotImplementedError

    def update(self, text: str) -> None:
        """Replace the shown text with `text` (everything generated so far)."""
        raise NotImplementedError


class PlatformAdapter:
    """Base class of the platform modules; one instance serves one bot."""

    label: ClassVar[StrOrPromise]
    credential_fields: ClassVar[tuple[CredentialField, ...]] = ()
    # Longest text one outbound message may carry, and how it is measured.
    max_message_bytes: ClassVar[int] = 2048
    # The chat shows a placeholder for every message (a "thinking" stream), so even a
    # message we refuse must get an answer, or the placeholder never resolves.
    answers_every_message: ClassVar[bool] = False
    # The platform calls the bot's callback URL (the API bot is only called by our API).
    takes_callbacks: ClassVar[bool] = True

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

    def learn_identity(self) -> dict[str, str]:
        """Credentials the platform can tell about this bot itself (its own user id, which
        tells its @mentions from others'), to store; {} when there is nothing to learn.
        Called by a periodic task, never inside a callback; raise DeliveryError on failure."""
        return {}

    def self_test(self, timeout: float) -> list[Finding]:
        """Ask the platform whether this bot's settings work, with harmless calls only (an
        access token, reads), each bounded by `timeout` seconds: one finding per check,
        in a fixed order, a check that cannot run being skipped with the reason. Never
        raises for what the platform answers: a refusal is a failed finding."""
        return []


def json_object(raw: bytes | str) -> dict[str, Any]:
    """A JSON object, or BadPayload: broken, hostile or non-object JSON is never a 500."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadPayload(f"body is not JSON: {type(exc).__name__}") from exc
    if not isinstance(value, dict):
        raise BadPayload("body is not a JSON object")
    return value


def check_timestamp(timestamp: str, *, now: float, max_skew: float) -> None:
    """Raise SignatureInvalid unless `timestamp` (a number, in the unit of `now`) lies
    within `max_skew` of `now`: an old signed request is a replay."""
    try:
        skew = abs(now - int(timestamp))
    except ValueError as exc:
        raise SignatureInvalid("timestamp is not a number") from exc
    if skew > max_skew:
        raise StaleRequest("timestamp outside the allowed window")
