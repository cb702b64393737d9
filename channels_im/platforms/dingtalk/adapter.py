"""DingTalk internal robot, HTTP mode: signed JSON in, markdown (or an AI card) out.

Answers go to the callback's `sessionWebhook` while it lives, else through the robot
OpenAPI with a cached access token. A bot with an AI card template streams its answers
into a card instead (spec §2.6).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from common.selftest import Finding

from .. import base
from ..client import http_json
from ..text import split_utf8
from ..wecom.crypto import WxBizMsgCrypt
from . import card
from .checks import app_checks
from .client import DingTalkClient
from .crypto import dingtalk_sign

if TYPE_CHECKING:
    from channels_im.models import Bot

logger = logging.getLogger(__name__)

# An encrypted event push signs its body: one signed more than an hour away (DingTalk's
# own bound) is a replay, and a repeat within it is only a duplicate.
MAX_CLOCK_SKEW_MS = 3_600_000
# A robot callback's sign covers only its timestamp, so anyone who sees one request's
# headers could sign any body with them until the timestamp expires. DingTalk sends at
# once and does not retry, so the window need only cover clock skew: 5 minutes, not the
# hour DingTalk's docs allow; and each sign is taken for one message only.
ROBOT_SIGN_WINDOW_MS = 300_000
# Stop using a session webhook a minute early: a send may be retried seconds later.
WEBHOOK_MARGIN_MS = 60_000
# Markdown titles are the notification preview; DingTalk shows about this many characters.
TITLE_CHARS = 20
MARKDOWN_MARKS = str.maketrans("", "", "*`~")


def now_ms() -> int:
    """The clock in DingTalk's milliseconds; one place for tests to freeze."""
    return int(time.time() * 1000)


def event_query(request: HttpRequest) -> tuple[str, str, str] | None:
    """(signature, timestamp, nonce) of an encrypted event push; None for a robot callback.

    DingTalk's libraries use either spelling of these query parameters.
    """
    query = request.GET
    signature = query.get("msg_signature") or query.get("signature")
    if not signature:
        return None
    return signature, query.get("timestamp") or query.get("timeStamp", ""), query.get("nonce", "")


def question_text(msg: dict[str, Any]) -> str:
    """What a robot message asks: a text's content, a rich text's text pieces joined, a
    voice message's transcript (`recognition`); "" for types without text."""
    if msg["msgtype"] == "text":
        return msg.get("text", {}).get("content", "")
    content = msg["content"] if isinstance(msg["content"], dict) else {}
    if msg["msgtype"] == "richText":
        pieces = content.get("richText")
        pieces = pieces if isinstance(pieces, list) else []
        texts = [p.get("text") for p in pieces if isinstance(p, dict)]
        return "".join(text for text in texts if isinstance(text, str))
    if msg["msgtype"] == "audio":
        recognition = content.get("recognition")
        return recognition if isinstance(recognition, str) else ""
    return ""


def markdown_title(text: str) -> str:
    """The first line, without markdown marks, short enough for a notification."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    plain = first.translate(MARKDOWN_MARKS).lstrip("#>- ").strip()
    return plain[:TITLE_CHARS] or "…"


class _Content(serializers.Field):
    """What a person wrote: cleaned of what no column stores (InboundMessage does that),
    where DRF's CharField would refuse the whole message."""

    default_error_messages = {"invalid": "Not a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return data

    def to_representation(self, value: str) -> str:
        return value


class _Text(serializers.Serializer):
    content = _Content()


class RobotMessage(serializers.Serializer):
    """The fields of a robot callback (spec §2.1) that we use; the rest is ignored."""

    # DingTalk's own field names, so that the schema reads like the spec.
    msgtype = serializers.CharField()
    msgId = serializers.CharField()
    conversationId = serializers.CharField()
    conversationType = serializers.ChoiceField(choices=["1", "2"])
    senderStaffId = serializers.CharField(allow_blank=True, default="")
    senderId = serializers.CharField(allow_blank=True, default="")
    senderNick = serializers.CharField(allow_blank=True, default="")
    isInAtList = serializers.BooleanField(default=False)
    robotCode = serializers.CharField(allow_blank=True, default="")
    text = _Text(required=False)
    # The payload of the other types: rich text, a voice message's transcript, a file …
    content = serializers.JSONField(required=False, default=dict)
    sessionWebhook = serializers.CharField(allow_blank=True, default="")
    sessionWebhookExpiredTime = serializers.IntegerField(default=0)


# One for every callback: `run_validation` keeps nothing on it, and a serializer made per
# callback deep-copies its fields each time (a tenth of the callback's time).
_ROBOT_MESSAGE = RobotMessage()


class DingTalkAdapter(base.PlatformAdapter):
    label = _("DingTalk internal robot (钉钉企业内部机器人)")
    # DingTalk publishes no limit; ~2,000 CJK characters is what DingTalk's own connector uses.
    max_message_bytes = 6000
    credential_fields = (
        base.CredentialField("app_key", secret=False, hint=_("AppKey (Client ID): 凭证与基础信息")),
        base.CredentialField("app_secret", hint=_("AppSecret (Client Secret): 凭证与基础信息")),
        base.CredentialField(
            "robot_code", secret=False, hint=_("RobotCode: 机器人配置 (usually the AppKey)")
        ),
        base.CredentialField.optional(
            "card_template_id", _("Optional: an AI card template id, to stream answers")
        ),
        base.CredentialField.optional(
            "token", _("Optional: Token of encrypted event callbacks"), secret=True
        ),
        base.CredentialField.optional(
            "aes_key", _("Optional: aes_key of encrypted event callbacks"), secret=True
        ),
    )

    def __init__(self, bot: Bot):
        super().__init__(bot)
        # Set by parse(): an encrypted event must be answered with an encrypted "success".
        self._sealed = False
        # Set by verify(): the robot callback's sign, which parse() lets sign one message.
        self._sign = ""

    # --- inbound ---------------------------------------------------------------------

    def verify(self, request: HttpRequest) -> None:
        signed = event_query(request)
        if signed is not None:
            signature, timestamp, nonce = signed
            base.check_timestamp(timestamp, now=now_ms(), max_skew=MAX_CLOCK_SKEW_MS)
            self.crypto.verify(signature, timestamp, nonce, self._ciphertext(request))
            return
        timestamp, sign = request.headers.get("timestamp", ""), request.headers.get("sign", "")
        if not timestamp or not sign:
            raise base.SignatureInvalid("timestamp or sign header missing")
        base.check_timestamp(timestamp, now=now_ms(), max_skew=ROBOT_SIGN_WINDOW_MS)
        secret = self.credentials.get("app_secret")
        if not secret:
            raise base.SignatureInvalid("bot credentials are incomplete")
        if not hmac.compare_digest(sign.encode(), dingtalk_sign(timestamp, secret).encode()):
            raise base.SignatureInvalid("sign mismatch")
        self._sign = sign

    def parse(self, request: HttpRequest) -> base.CallbackResult:
        if event_query(request) is None:
            return self.parse_robot_callback(base.json_object(request.body))
        self._sealed = True
        inner = base.json_object(self.crypto.decrypt(self._ciphertext(request)))
        if "msgtype" in inner:
            return self.parse_message(inner)
        return base.Ignored(f"event {inner.get('EventType') or 'unknown'}")

    def parse_robot_callback(self, data: dict[str, Any]) -> base.CallbackResult:
        """A robot callback, whose body its sign does not cover: it must name this robot,
        and its sign may carry one message (a retry of that message is still taken)."""
        result = self.parse_message(data)
        if isinstance(result, base.InboundMessage) and self._sign_used_for_another(result):
            raise base.SignatureInvalid("sign already used for another message")
        return result

    def _sign_used_for_another(self, message: base.InboundMessage) -> bool:
        """Whether this callback's sign already carried another message. The cache must be
        shared by the web processes (Redis, or the embedded file cache); when it cannot
        answer, the callback is taken, as a rate limit lets messages through: losing a
        genuine message is worse than the replay window the cache closes."""
        key = f"im:dingtalk:sign:{self.credentials.get('app_key', '')}:{self._sign}"
        # Both sides of now: a sign is good from T - window to T + window.
        lifetime = 2 * ROBOT_SIGN_WINDOW_MS // 1000
        try:
            return not cache.add(key, message.external_id, lifetime) and (
                cache.get(key) != message.external_id
            )
        except Exception:  # noqa: BLE001 - any cache backend's failure
            logger.warning(
                "bot %s: the cache is down; a DingTalk sign is taken unchecked", self.bot.pk
            )
            return False

    def parse_message(self, data: dict[str, Any]) -> base.CallbackResult:
        """A message from a person: any type, addressed to the robot in a single chat or
        by an @mention in a group; a type the robot cannot read keeps its name."""
        try:
            msg = _ROBOT_MESSAGE.run_validation(data)
        except serializers.ValidationError as exc:
            fields = sorted(exc.detail) if isinstance(exc.detail, dict) else []
            raise base.BadPayload(f"robot message fields invalid: {fields}") from exc
        if self._sign and msg["robotCode"] != self.credentials.get("robot_code"):
            raise base.SignatureInvalid("callback names another robot")
        is_group = msg["conversationType"] == "2"
        if is_group and not msg["isInAtList"]:
            return base.Ignored("group message without an @mention of the robot")
        # senderId is an encrypted id that no send API accepts; it only keeps sessions apart.
        sender = msg["senderStaffId"] or msg["senderId"]
        if not sender:
            raise base.BadPayload("robot message without a sender")
        text = self.strip_mention(question_text(msg))
        return base.InboundMessage(
            external_id=msg["msgId"],
            sender=sender,
            chat=msg["conversationId"],
            text=text,
            is_group=is_group,
            kind=base.TEXT if text or msg["msgtype"] == "text" else msg["msgtype"],
            reply_context={
                "session_webhook": msg["sessionWebhook"],
                "session_webhook_expires_ms": msg["sessionWebhookExpiredTime"],
                "conversation_id": msg["conversationId"],
                "sender_staff_id": msg["senderStaffId"],
                "sender_nick": msg["senderNick"],
            },
        )

    def strip_mention(self, text: str) -> str:
        """DingTalk cuts the @name but leaves its spaces; a typed "@<bot name>" may remain."""
        text = text.strip()
        mention = f"@{self.bot.name}"
        return text[len(mention) :].strip() if text.startswith(mention) else text

    def ack(self, result: base.CallbackResult) -> HttpResponse:
        return JsonResponse(self.sealed_success() if self._sealed else {})

    def sealed_success(self) -> dict[str, str]:
        """The encrypted "success" every event push needs, or DingTalk counts a failure."""
        timestamp, nonce = str(now_ms()), secrets.token_hex(8)
        encrypted = self.crypto.encrypt("success")
        return {
            "msg_signature": self.crypto.signature(timestamp, nonce, encrypted),
            "timeStamp": timestamp,
            "nonce": nonce,
            "encrypt": encrypted,
        }

    @cached_property
    def crypto(self) -> WxBizMsgCrypt:
        creds = self.credentials
        if not creds.get("token") or not creds.get("aes_key"):
            raise base.SignatureInvalid(
                "encrypted callbacks need the token and aes_key credentials"
            )
        try:
            return WxBizMsgCrypt(creds["token"], creds["aes_key"], creds["app_key"])
        except (KeyError, ValueError) as exc:
            raise base.SignatureInvalid("bot credentials are incomplete") from exc

    def _ciphertext(self, request: HttpRequest) -> str:
        encrypted = base.json_object(request.body).get("encrypt")
        if not isinstance(encrypted, str) or not encrypted:
            raise base.BadPayload("no encrypt field")
        return encrypted

    # --- outbound --------------------------------------------------------------------

    @cached_property
    def client(self) -> DingTalkClient:
        return DingTalkClient(self.credentials["app_key"], self.credentials["app_secret"])

    def self_test(self, timeout: float) -> list[Finding]:
        return app_checks(self, timeout)

    def send(self, reply: base.OutboundReply) -> None:
        if reply.live and self._finish_card(reply.live["out_track_id"], reply.text):
            return
        # In a group only the first part @-mentions the asker: one notification.
        reply.send_parts(
            split_utf8(reply.text, self.max_message_bytes),
            lambda index, chunk: self._send_markdown(
                reply, chunk, mention=reply.is_group and index == 0
            ),
        )

    def _finish_card(self, out_track_id: str, text: str) -> bool:
        """Finish the live card; False if it is gone for good, so a message goes instead."""
        try:
            card.finish(self.client, out_track_id, text)
        except base.DeliveryError as exc:
            if not exc.permanent:
                raise
            logger.warning("bot %s: AI card not finished (%s); sending a message", self.bot.pk, exc)
            return False
        return True

    def _send_markdown(self, reply: base.OutboundReply, text: str, *, mention: bool) -> None:
        webhook = self.live_webhook(reply.reply_context)
        if webhook is None:
            self._send_by_openapi(reply, text)
            return
        body: dict[str, Any] = {
            "msgtype": "markdown",
            "markdown": {"title": markdown_title(text), "text": text},
        }
        if mention:
            # A markdown @ only notifies when the id also appears in the text as "@id".
            body["markdown"]["text"] = f"@{reply.recipient}\n\n{text}"
            body["at"] = {"atUserIds": [reply.recipient], "isAtAll": False}
        try:
            DingTalkClient.raise_for_code("sessionWebhook", http_json("POST", webhook, json=body))
        except base.DeliveryError as exc:
            if not exc.permanent:
                raise
            # A webhook can die before its stated expiry (300001 "session不存在" …); the
            # OpenAPI reaches the same chat.
            logger.warning(
                "bot %s: session webhook refused (%s); using the OpenAPI", self.bot.pk, exc
            )
            self._send_by_openapi(reply, text)

    def live_webhook(self, context: dict[str, Any]) -> str | None:
        """The session webhook while it lives, and only on the configured DingTalk host."""
        url = context.get("session_webhook") or ""
        if not url:
            return None
        # The callback is signed, but we never POST where the operator did not point us.
        if not url.startswith(settings.DINGTALK_OAPI_BASE + "/"):
            logger.warning("bot %s: session webhook on a foreign host ignored", self.bot.pk)
            return None
        if now_ms() >= int(context.get("session_webhook_expires_ms") or 0) - WEBHOOK_MARGIN_MS:
            return None
        return url

    def _send_by_openapi(self, reply: base.OutboundReply, text: str) -> None:
        markdown = {"title": markdown_title(text), "text": text}
        message = {
            "robotCode": self.credentials["robot_code"],
            "msgKey": "sampleMarkdown",
            "msgParam": json.dumps(markdown, ensure_ascii=False),  # a JSON string, not an object
        }
        if reply.is_group:
            message["openConversationId"] = reply.reply_context["conversation_id"]
            self.client.call("POST", "/v1.0/robot/groupMessages/send", message)
            return
        path = "/v1.0/robot/oToMessages/batchSend"
        answer = self.client.call("POST", path, {**message, "userIds": [reply.recipient]})
        if answer.get("flowControlledStaffIdList"):
            raise base.DeliveryError("DingTalk batchSend: the recipient is flow-controlled")
        if answer.get("invalidStaffIdList"):
            raise base.DeliveryError("DingTalk batchSend: not a staff id", permanent=True)

    def live(self, reply: base.OutboundReply) -> base.LiveReply | None:
        template = self.credentials.get("card_template_id")
        if not template:
            return None
        space = card.card_space(
            self.credentials["robot_code"],
            group=reply.reply_context["conversation_id"] if reply.is_group else None,
            user=reply.recipient,
        )
        started = reply.live.get("out_track_id", "")
        return card.AICard(self.client, reply.key, {"cardTemplateId": template, **space}, started)
