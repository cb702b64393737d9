"""Feishu / Lark (飞书) app bot: encrypted v2 events in, message replies and CardKit cards out."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext_lazy as _

from .base import (
    BadPayload,
    CallbackResult,
    Challenge,
    CredentialField,
    DeliveryError,
    Ignored,
    InboundMessage,
    LiveReply,
    OutboundReply,
    PlatformAdapter,
    SignatureInvalid,
    TokenCache,
    http_json,
    json_object,
    secret_id,
)
from .feishu_crypto import FeishuCipher, feishu_signature
from .text import split_first, split_utf8
from .wecom import check_timestamp

logger = logging.getLogger(__name__)

MESSAGE_EVENT = "im.message.receive_v1"
# Feishu re-pushes an event for about 7 hours (15 s, 5 min, 1 h, 6 h): remember it longer.
EVENT_SEEN_SECONDS = 8 * 3600
# Mention placeholders in the text; the names behind them are in `mentions`.
MENTION = re.compile(r"[ \t]*(?:@_user_\d+|@_all)[ \t]*")
# Token invalid or expired: refresh once and resend.
TOKEN_ERRORS = {99991663, 99991664, 99991665, 99991666, 99991668}
# Frequency limits: worth retrying later. Every other code stays wrong on a retry.
RATE_LIMIT_CODES = {99991402, 11020, 11021, 230020}
# "sequence not increasing": on a finishing step, that step was already done.
SEQUENCE_NOT_INCREASING = 300317
# A text body may be 150 KB, a card 30 KB; stay well below both after JSON escaping.
TEXT_BYTES = 30_000
CARD_TEXT_BYTES = 20_000
CARDS = "/open-apis/cardkit/v1/cards"
ELEMENT_ID = "md_1"
CONTENT = f"elements/{ELEMENT_ID}/content"
# The largest sequence Feishu accepts (int32); finishing a card uses the top two.
LAST_SEQUENCE = 2**31 - 1


class FeishuAdapter(PlatformAdapter):
    key = "feishu"
    label = _("Feishu / Lark app bot (飞书自建应用机器人)")
    credential_fields = (
        CredentialField("app_id", secret=False, hint=_("App ID: 凭证与基础信息")),
        CredentialField("app_secret", hint=_("App Secret: 凭证与基础信息")),
        CredentialField("verification_token", hint=_("Verification Token: 事件与回调 → 加密策略")),
        CredentialField("encrypt_key", hint=_("Encrypt Key: 事件与回调 → 加密策略")),
        # Decides whether a group message @mentions this bot (GET /open-apis/bot/v3/info).
        CredentialField(
            "bot_open_id",
            required=False,
            secret=False,
            hint=_("Optional: the bot's open_id, to tell its @mentions from others"),
        ),
        # https://open.larksuite.com for Lark; empty: FEISHU_API_BASE.
        CredentialField(
            "api_base",
            required=False,
            secret=False,
            hint=_("Optional: https://open.larksuite.com for Lark"),
        ),
    )
    max_message_bytes = TEXT_BYTES

    @cached_property
    def cipher(self) -> FeishuCipher:
        return FeishuCipher(self.credentials.get("encrypt_key", ""))

    def verify(self, request: HttpRequest) -> None:
        payload = self.payload(request)
        if payload.get("type") == "url_verification":
            # The console sends the handshake unsigned (the SDK skips the check too).
            self._check_token(payload.get("token"))
            return
        check_timestamp(request.headers.get("X-Lark-Request-Timestamp", ""))
        self._check_signature(request)
        header = payload.get("header")
        # v2 events carry the token in the header, v1 events at the top level.
        self._check_token(header.get("token") if isinstance(header, dict) else payload.get("token"))

    def _check_signature(self, request: HttpRequest) -> None:
        encrypt_key = self.credentials.get("encrypt_key")
        if not encrypt_key:
            raise SignatureInvalid("bot credentials are incomplete")
        expected = feishu_signature(
            request.headers.get("X-Lark-Request-Timestamp", ""),
            request.headers.get("X-Lark-Request-Nonce", ""),
            encrypt_key,
            request.body,
        )
        given = request.headers.get("X-Lark-Signature", "").encode()
        if not hmac.compare_digest(expected.encode(), given):
            raise SignatureInvalid("signature mismatch")

    def _check_token(self, token: Any) -> None:
        expected = str(self.credentials.get("verification_token") or "")
        if not expected or not hmac.compare_digest(expected.encode(), str(token or "").encode()):
            raise SignatureInvalid("verification token mismatch")

    def payload(self, request: HttpRequest) -> dict[str, Any]:
        """The callback's JSON object, decrypted when it arrives as {"encrypt": …}."""
        body = json_object(request.body)
        if "encrypt" not in body:
            return body
        if not isinstance(body["encrypt"], str):
            raise BadPayload("encrypt is not a string")
        return json_object(self.cipher.decrypt(body["encrypt"]).encode())

    def parse(self, request: HttpRequest) -> CallbackResult:
        payload = self.payload(request)
        if payload.get("type") == "url_verification":
            challenge = payload.get("challenge")
            if not isinstance(challenge, str):
                raise BadPayload("url_verification without a challenge")
            return Challenge(json.dumps({"challenge": challenge}), "application/json")
        header, event = _object(payload.get("header")), _object(payload.get("event"))
        if header.get("event_type") != MESSAGE_EVENT:
            return Ignored(f"event {header.get('event_type') or payload.get('type') or 'unknown'}")
        event_id = header.get("event_id")
        if not event_id or not isinstance(event_id, str):
            raise BadPayload("event without event_id")
        if cache.get(self._event_key(event_id)) is not None:
            return Ignored("duplicate event")
        return self.parse_message(event, event_id)

    def parse_message(self, event: dict[str, Any], event_id: str) -> CallbackResult:
        message = _object(event.get("message"))
        if message.get("message_type") != "text":
            return Ignored(f"message type {message.get('message_type') or 'unknown'}")
        is_group = message.get("chat_type") == "group"
        if is_group and not self._mentioned(message.get("mentions")):
            return Ignored("group message that does not @mention the bot")
        sender = _object(_object(event.get("sender")).get("sender_id")).get("open_id")
        message_id, chat = message.get("message_id"), message.get("chat_id")
        if not all(isinstance(v, str) and v for v in (message_id, sender, chat)):
            raise BadPayload("message without message_id, sender open_id or chat_id")
        text = MENTION.sub(" ", text_content(message.get("content"))).strip()
        if not text:
            return Ignored("empty message")
        return InboundMessage(
            external_id=message_id,
            sender=sender,
            chat=chat,
            text=text,
            is_group=is_group,
            reply_context={"message_id": message_id, "event_id": event_id},
        )

    def _mentioned(self, mentions: Any) -> bool:
        mentions = mentions if isinstance(mentions, list) else []
        bot_open_id = self.credentials.get("bot_open_id")
        if not bot_open_id:
            # Without the "all group messages" scope Feishu only delivers those that @ the bot.
            return bool(mentions)
        return any(_object(_object(m).get("id")).get("open_id") == bot_open_id for m in mentions)

    def _event_key(self, event_id: str) -> str:
        return f"feishu:event:{self.credentials.get('app_id', '')}:{event_id}"

    def ack(self, result: CallbackResult) -> HttpResponse:
        if isinstance(result, Challenge):
            return HttpResponse(result.body, content_type=result.content_type)
        if isinstance(result, InboundMessage):
            # Remembered only now that the message is stored: after a 503 the re-push is taken.
            cache.add(self._event_key(result.reply_context["event_id"]), 1, EVENT_SEEN_SECONDS)
        return JsonResponse({"msg": "success"})

    def send(self, reply: OutboundReply) -> None:
        rest = reply.text
        if reply.reply_context.get("live"):
            rest = self._finish_card(reply)
        chunks = split_utf8(rest, self.max_message_bytes) if rest else []
        for index, chunk in enumerate(chunks):
            self.reply(reply, "text", {"text": chunk}, self.idempotency_key(reply.key, str(index)))

    def _finish_card(self, reply: OutboundReply) -> str:
        """Put the final text in the streaming card; return what is left to send as text."""
        shown, rest = split_first(reply.text, CARD_TEXT_BYTES)
        try:
            StreamingCard(self, reply).finish(shown)
        except DeliveryError as exc:
            if not exc.permanent:
                raise
            # A card we cannot finish (expired, scope revoked) must not swallow the answer.
            logger.warning("streaming card not finished, answering as text: %s", exc)
            return reply.text
        return rest.strip()

    def reply(
        self, reply: OutboundReply, msg_type: str, content: dict[str, Any], uuid: str
    ) -> None:
        message_id = reply.reply_context.get("message_id")
        if not message_id:
            raise DeliveryError("Feishu: no message to reply to", permanent=True)
        payload = {
            "msg_type": msg_type,
            "content": json.dumps(content, ensure_ascii=False),
            "uuid": uuid,  # Feishu sends one message per uuid (for an hour): retries are safe
        }
        self.api.call("POST", f"/open-apis/im/v1/messages/{message_id}/reply", payload)

    def idempotency_key(self, key: str, part: str) -> str:
        """Stable across retries, unique per bot, and within Feishu's 50-character limit."""
        return hashlib.sha256(f"{self.bot.public_id}:{key}:{part}".encode()).hexdigest()[:32]

    def live(self, reply: OutboundReply) -> LiveReply | None:
        if not reply.reply_context.get("message_id"):
            return None
        return StreamingCard(self, reply)

    @cached_property
    def api(self) -> FeishuClient:
        creds = self.credentials
        base = (creds.get("api_base") or settings.FEISHU_API_BASE).rstrip("/")
        if base not in (settings.FEISHU_API_BASE, *settings.FEISHU_ALLOWED_API_BASES):
            # The app secret goes wherever this points: only where the operator allows.
            raise DeliveryError(
                f"api_base {base} is not in FEISHU_ALLOWED_API_BASES", permanent=True
            )
        return FeishuClient(base, creds.get("app_id", ""), creds.get("app_secret", ""))


class FeishuClient:
    """Feishu's open API for one app, with its tenant_access_token cached and refreshed."""

    def __init__(self, base: str, app_id: str, app_secret: str):
        self.base = base
        self.app_id = app_id
        self.app_secret = app_secret

    def call(self, method: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Call with the cached token; on a token error refresh it once and call again."""
        body = self._request(method, path, payload)
        if body.get("code") in TOKEN_ERRORS:
            self.tokens.invalidate()
            body = self._request(method, path, payload)
        if body.get("code", 0) != 0:
            raise feishu_error(path, body)
        return body

    def _request(self, method: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.tokens.get()}"}
        return http_json(method, self.base + path, json=payload, headers=headers, coded_4xx=True)

    @cached_property
    def tokens(self) -> TokenCache:
        return TokenCache(f"feishu:{self.app_id}:{secret_id(self.app_secret)}", self._fetch_token)

    def _fetch_token(self) -> tuple[str, int]:
        path = "/open-apis/auth/v3/tenant_access_token/internal"
        body = http_json(
            "POST",
            self.base + path,
            json={"app_id": self.app_id, "app_secret": self.app_secret},
            coded_4xx=True,
        )
        if body.get("code", 0) != 0 or not body.get("tenant_access_token"):
            raise feishu_error(path, body)
        return body["tenant_access_token"], int(body.get("expire", 7200))


class StreamingCard(LiveReply):
    """A CardKit card (JSON 2.0) whose markdown element grows while the model writes.

    Every operation on a card needs a strictly increasing `sequence`. An update uses the
    milliseconds since the card was created (kept with it in reply_context["live"]), so a
    retried answer keeps counting up; 14 days, the card's lifetime, fit in an int32. The
    final text and the end of streaming use the two largest int32 values: above any update
    whatever the workers' clocks, and when a retried finish meets 300317 that step is done.
    """

    interval = 0.3  # Feishu allows 10 operations per second on one card

    def __init__(self, adapter: FeishuAdapter, reply: OutboundReply):
        self.adapter = adapter
        self.reply = reply
        self.state: dict[str, Any] = dict(reply.reply_context.get("live") or {})
        self.sequence = 0

    def start(self, text: str) -> dict[str, Any]:
        data = json.dumps(streaming_card(card_text(text)), ensure_ascii=False)
        created = self.adapter.api.call("POST", CARDS, {"type": "card_json", "data": data})
        card_id = _object(created.get("data")).get("card_id")
        if not card_id:
            raise DeliveryError(f"Feishu {CARDS}: no card_id in the answer", permanent=True)
        content = {"type": "card", "data": {"card_id": card_id}}
        uuid = self.adapter.idempotency_key(self.reply.key, "card")
        self.adapter.reply(self.reply, "interactive", content, uuid)
        self.state = {"card_id": card_id, "created_ms": _now_ms()}
        return self.state

    def update(self, text: str) -> None:
        elapsed = _now_ms() - int(self.state.get("created_ms", 0))
        self.sequence = max(self.sequence + 1, elapsed)
        self._call("PUT", CONTENT, {"content": card_text(text)}, self.sequence)

    def finish(self, text: str) -> None:
        """Show the final text and end streaming; safe to repeat after a partial failure."""
        stop = {"settings": json.dumps({"config": {"streaming_mode": False}})}
        for method, where, payload, sequence in (
            ("PUT", CONTENT, {"content": text}, LAST_SEQUENCE - 1),
            ("PATCH", "settings", stop, LAST_SEQUENCE),
        ):
            try:
                self._call(method, where, payload, sequence)
            except DeliveryError as exc:
                if exc.code != SEQUENCE_NOT_INCREASING:
                    raise

    def _call(self, method: str, where: str, payload: dict[str, Any], sequence: int) -> None:
        path = f"{CARDS}/{self.state.get('card_id')}/{where}"
        self.adapter.api.call(method, path, {**payload, "sequence": sequence})


def text_content(content: Any) -> str:
    """The text of a `text` message, whose `content` is itself a JSON string."""
    if not isinstance(content, str):
        raise BadPayload("message content is not a string")
    text = json_object(content.encode()).get("text")
    if not isinstance(text, str):
        raise BadPayload("text message without text")
    return text


def streaming_card(text: str) -> dict[str, Any]:
    """Card JSON 2.0 in streaming mode: one markdown element that updates replace."""
    return {
        "schema": "2.0",
        "config": {"streaming_mode": True, "update_multi": True},
        "body": {"elements": [{"tag": "markdown", "element_id": ELEMENT_ID, "content": text}]},
    }


def card_text(text: str) -> str:
    """The part of the answer a card can show; `send` replies the rest as text."""
    return split_first(text, CARD_TEXT_BYTES)[0]


def feishu_error(path: str, body: dict[str, Any]) -> DeliveryError:
    code = body.get("code")
    message = f"Feishu {path}: code {code} {str(body.get('msg', ''))[:200]}"
    return DeliveryError(message, permanent=code not in RATE_LIMIT_CODES, code=code)


def _object(value: Any) -> dict[str, Any]:
    """A nested JSON object, or {} when it is missing or of another type."""
    return value if isinstance(value, dict) else {}


def _now_ms() -> int:
    return int(time.time() * 1000)
