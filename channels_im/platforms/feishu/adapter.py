"""Feishu / Lark (飞书) app bot: encrypted v2 events in, message replies and CardKit cards out.

Spec §3: events are checked (signature, timestamp, verification token), decrypted once
per request, and parsed; answers reply to the question's message, streamed into a
CardKit card (`card.py`) while the model writes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeGuard

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext_lazy as _

from common.selftest import Finding

from .. import base
from ..text import split_first, split_utf8
from . import content
from .card import CARD_TEXT_BYTES, StreamingCard
from .checks import app_checks
from .client import FeishuClient
from .crypto import FeishuCipher, feishu_signature

if TYPE_CHECKING:
    from channels_im.models import Bot

logger = logging.getLogger(__name__)

MESSAGE_EVENT = "im.message.receive_v1"
# A message taken back; any recall (its sender, a group owner or admin) removes the question.
RECALL_EVENT = "im.message.recalled_v1"
# Feishu re-pushes an event for about 7 hours (15 s, 5 min, 1 h, 6 h): remember it longer.
EVENT_SEEN_SECONDS = 8 * 3600
# Feishu signs with its own clock; a callback signed more than an hour away is a replay.
MAX_CLOCK_SKEW_SECONDS = 3600
# A text body may be 150 KB; stay well below it after JSON escaping.
TEXT_BYTES = 30_000


class FeishuAdapter(base.PlatformAdapter):
    label = _("Feishu / Lark app bot (飞书自建应用机器人)")
    max_message_bytes = TEXT_BYTES
    credential_fields = (
        base.CredentialField("app_id", secret=False, hint=_("App ID: 凭证与基础信息")),
        base.CredentialField("app_secret", hint=_("App Secret: 凭证与基础信息")),
        base.CredentialField(
            "verification_token", hint=_("Verification Token: 事件与回调 → 加密策略")
        ),
        base.CredentialField("encrypt_key", hint=_("Encrypt Key: 事件与回调 → 加密策略")),
        # Decides whether a group message @mentions this bot (GET /open-apis/bot/v3/info).
        base.CredentialField.optional(
            "bot_open_id",
            _("Learned from the app's credentials within a minute; set it only to override"),
        ),
        # https://open.larksuite.com for Lark; empty: FEISHU_API_BASE.
        base.CredentialField.optional(
            "api_base", _("Optional: https://open.larksuite.com for Lark")
        ),
    )

    def __init__(self, bot: Bot):
        super().__init__(bot)
        # (request, its decrypted payload): verify and parse read it once between them.
        self._payload: tuple[HttpRequest, dict[str, Any]] | None = None

    @cached_property
    def cipher(self) -> FeishuCipher:
        return FeishuCipher(self.credentials.get("encrypt_key", ""))

    def verify(self, request: HttpRequest) -> None:
        payload = self.payload(request)
        if payload.get("type") == "url_verification":
            # The console sends the handshake unsigned (the SDK skips the check too).
            self._check_token(payload.get("token"))
            return
        timestamp = request.headers.get("X-Lark-Request-Timestamp", "")
        base.check_timestamp(timestamp, now=time.time(), max_skew=MAX_CLOCK_SKEW_SECONDS)
        self._check_signature(request)
        header = payload.get("header")
        # v2 events carry the token in the header, v1 events at the top level.
        self._check_token(header.get("token") if isinstance(header, dict) else payload.get("token"))

    def _check_signature(self, request: HttpRequest) -> None:
        encrypt_key = self.credentials.get("encrypt_key")
        if not encrypt_key:
            raise base.SignatureInvalid("bot credentials are incomplete")
        expected = feishu_signature(
            request.headers.get("X-Lark-Request-Timestamp", ""),
            request.headers.get("X-Lark-Request-Nonce", ""),
            encrypt_key,
            request.body,
        )
        given = request.headers.get("X-Lark-Signature", "").encode()
        if not hmac.compare_digest(expected.encode(), given):
            raise base.SignatureInvalid("signature mismatch")

    def _check_token(self, token: Any) -> None:
        expected = str(self.credentials.get("verification_token") or "")
        if not expected or not hmac.compare_digest(expected.encode(), str(token or "").encode()):
            raise base.SignatureInvalid("verification token mismatch")

    def payload(self, request: HttpRequest) -> dict[str, Any]:
        """The callback's JSON object, decrypted when it arrives as {"encrypt": …}; read
        and decrypted once per request."""
        if self._payload is None or self._payload[0] is not request:
            self._payload = (request, self._read(request.body))
        return self._payload[1]

    def _read(self, raw: bytes) -> dict[str, Any]:
        body = base.json_object(raw)
        if "encrypt" not in body:
            return body
        if not isinstance(body["encrypt"], str):
            raise base.BadPayload("encrypt is not a string")
        return base.json_object(self.cipher.decrypt(body["encrypt"]).encode())

    def parse(self, request: HttpRequest) -> base.CallbackResult:
        payload = self.payload(request)
        if payload.get("type") == "url_verification":
            challenge = payload.get("challenge")
            if not isinstance(challenge, str):
                raise base.BadPayload("url_verification without a challenge")
            return base.Challenge(json.dumps({"challenge": challenge}), "application/json")
        header, event = _object(payload.get("header")), _object(payload.get("event"))
        if header.get("event_type") == RECALL_EVENT:
            return self.parse_recall(event)
        if header.get("event_type") != MESSAGE_EVENT:
            return base.Ignored(
                f"event {header.get('event_type') or payload.get('type') or 'unknown'}"
            )
        event_id = header.get("event_id")
        if not event_id or not isinstance(event_id, str):
            raise base.BadPayload("event without event_id")
        base.check_identifier("event_id", event_id)  # before it names a cache key
        if self._seen(event_id):
            return base.Ignored("duplicate event")
        return self.parse_message(event, event_id)

    def parse_message(self, event: dict[str, Any], event_id: str) -> base.CallbackResult:
        """A person's message of any type, in a single chat or @mentioning the bot in a
        group; text and rich text (`post`) are read, other types keep their name."""
        message = _object(event.get("message"))
        message_type = message.get("message_type")
        if not _text(message_type):
            raise base.BadPayload("message without message_type")
        is_group = message.get("chat_type") == "group"
        if is_group and not self._mentioned(message.get("mentions")):
            return base.Ignored("group message that does not @mention the bot")
        sender = _object(_object(event.get("sender")).get("sender_id")).get("open_id")
        message_id, chat = message.get("message_id"), message.get("chat_id")
        if not (_text(message_id) and _text(sender) and _text(chat)):
            raise base.BadPayload("message without message_id, sender open_id or chat_id")
        text = ""
        if message_type in content.READABLE_TYPES:
            mentions = content.Mentions.of(message.get("mentions"), self.bot_open_id)
            text = content.question(message_type, message.get("content"), mentions)
            if not text:
                return base.Ignored("empty message")
        return base.InboundMessage(
            external_id=message_id,
            sender=sender,
            chat=chat,
            text=text,
            is_group=is_group,
            reply_context={"message_id": message_id, "event_id": event_id},
            kind=base.TEXT if text else message_type,
        )

    def parse_recall(self, event: dict[str, Any]) -> base.Recalled:
        """A recalled message, named by its message_id; a re-pushed event is harmless (the
        answer is stopped once), so it is not deduplicated."""
        message_id = event.get("message_id")
        if not _text(message_id):
            raise base.BadPayload("recall without message_id")
        base.check_identifier("message_id", message_id)
        return base.Recalled(message_id)

    @property
    def bot_open_id(self) -> str:
        """The bot's own open_id: set by the admin, or learned (`learn_identity`)."""
        return str(self.credentials.get("bot_open_id") or "")

    def learn_identity(self) -> dict[str, str]:
        if self.bot_open_id:
            return {}
        open_id = self.client.bot_open_id()
        return {"bot_open_id": open_id} if open_id else {}

    def self_test(self, timeout: float) -> list[Finding]:
        return app_checks(self, timeout)

    def _mentioned(self, mentions: Any) -> bool:
        # Before the bot's open_id is learned any mention counts: without the "all group
        # messages" scope Feishu only delivers those that @ the bot.
        return content.Mentions.of(mentions, self.bot_open_id).bot_key is not None

    def _seen(self, event_id: str) -> bool:
        """Whether this event was taken before. Only a shortcut: the message's own id is
        unique in the log, so with the cache down a re-push is still stored once."""
        try:
            return cache.get(self._event_key(event_id)) is not None
        except Exception:  # noqa: BLE001 - any cache backend's failure
            logger.warning("bot %s: the cache is down; Feishu events not deduplicated", self.bot.pk)
            return False

    def _remember(self, event_id: str) -> None:
        try:
            cache.add(self._event_key(event_id), 1, EVENT_SEEN_SECONDS)
        except Exception:  # noqa: BLE001 - any cache backend's failure
            logger.warning("bot %s: the cache is down; Feishu event not remembered", self.bot.pk)

    def _event_key(self, event_id: str) -> str:
        return f"feishu:event:{self.credentials.get('app_id', '')}:{event_id}"

    def ack(self, result: base.CallbackResult) -> HttpResponse:
        if isinstance(result, base.Challenge):
            return HttpResponse(result.body, content_type=result.content_type)
        if isinstance(result, base.InboundMessage):
            # Remembered only now that the message is stored: after a 503 the re-push is taken.
            self._remember(result.reply_context["event_id"])
        return JsonResponse({"msg": "success"})

    def send(self, reply: base.OutboundReply) -> None:
        rest = reply.text
        if reply.live:
            rest = self._finish_card(reply)
        chunks = split_utf8(rest, self.max_message_bytes) if rest else []
        for index, chunk in enumerate(chunks):
            self.reply(reply, "text", {"text": chunk}, self.idempotency_key(reply.key, str(index)))

    def _finish_card(self, reply: base.OutboundReply) -> str:
        """Put the final text in the streaming card; return what is left to send as text."""
        shown, rest = split_first(reply.text, CARD_TEXT_BYTES)
        try:
            self.card(reply).finish(shown)
        except base.DeliveryError as exc:
            if not exc.permanent:
                raise
            # A card we cannot finish (expired, scope revoked) must not swallow the answer.
            logger.warning("streaming card not finished, answering as text: %s", exc)
            return reply.text
        return rest.strip()

    def reply(
        self, reply: base.OutboundReply, msg_type: str, content: dict[str, Any], uuid: str
    ) -> None:
        message_id = reply.reply_context.get("message_id")
        if not message_id:
            raise base.DeliveryError("Feishu: no message to reply to", permanent=True)
        payload = {
            "msg_type": msg_type,
            "content": json.dumps(content, ensure_ascii=False),
            "uuid": uuid,  # Feishu sends one message per uuid (for an hour): retries are safe
        }
        self.client.call("POST", f"/open-apis/im/v1/messages/{message_id}/reply", payload)

    def idempotency_key(self, key: str, part: str) -> str:
        """Stable across retries, unique per bot, and within Feishu's 50-character limit."""
        return hashlib.sha256(f"{self.bot.public_id}:{key}:{part}".encode()).hexdigest()[:32]

    def live(self, reply: base.OutboundReply) -> base.LiveReply | None:
        if not reply.reply_context.get("message_id"):
            return None
        return self.card(reply)

    def card(self, reply: base.OutboundReply) -> StreamingCard:
        """The streaming card of this answer: new, or the one `live` names."""

        def post(card_id: str, uuid: str) -> None:
            self.reply(reply, "interactive", {"type": "card", "data": {"card_id": card_id}}, uuid)

        uuid = self.idempotency_key(reply.key, "card")
        return StreamingCard(self.client, post, uuid, reply.live)

    @cached_property
    def client(self) -> FeishuClient:
        creds = self.credentials
        api_base = (creds.get("api_base") or settings.FEISHU_API_BASE).rstrip("/")
        if api_base not in (settings.FEISHU_API_BASE, *settings.FEISHU_ALLOWED_API_BASES):
            # The app secret goes wherever this points: only where the operator allows.
            raise base.DeliveryError(
                f"api_base {api_base} is not in FEISHU_ALLOWED_API_BASES", permanent=True
            )
        return FeishuClient(creds.get("app_id", ""), creds.get("app_secret", ""), base=api_base)


def _text(value: Any) -> TypeGuard[str]:
    """A non-empty string."""
    return isinstance(value, str) and bool(value)


def _object(value: Any) -> dict[str, Any]:
    """A nested JSON object, or {} when it is missing or of another type."""
    return value if isinstance(value, dict) else {}
