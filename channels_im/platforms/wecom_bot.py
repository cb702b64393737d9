"""WeCom smart robot (企业微信智能机器人, API mode): encrypted JSON callbacks, answers streamed.

A smart robot answers inside WeCom's own requests: the reply to a user message names a
stream, then WeCom polls with stream-refresh callbacks until one says `finish`. The worker
writes the text so far to the cache and the web process answers each poll from there, so a
poll costs one cache read and never waits on the model. What cannot go into the stream (too
late, too long) goes once to the message's `response_url`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import override

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
    PlatformCallback,
    SignatureInvalid,
    http_json,
    json_object,
)
from .text import split_first
from .wecom import WeComCallbacks, wecom_error

logger = logging.getLogger(__name__)

THINKING = _("Thinking…")
# The stream content limit is not documented; ~20,480 bytes circulates, so stay below it.
MAX_STREAM_BYTES = 20_000
# WeCom stops polling 6 minutes after the user's message. An answer finished later than
# this goes by response_url; the margin covers the gap between two polls.
STREAM_WINDOW_SECONDS = 330
# Long enough to outlive WeCom's polling and response_url's one-hour validity.
STREAM_TTL_SECONDS = 3600
# A leading "@Display Name" token, however the admin named the robot (WeCom keeps it).
LEADING_MENTION = re.compile(r"^\s*@\S+\s*")


@dataclass(frozen=True)
class StreamRefresh(PlatformCallback):
    """WeCom polling for the text of a stream we named; answered from the cache."""

    stream_id: str


def stream_id_for(bot_public_id: str, msgid: str) -> str:
    """Derived, not stored: a retried callback must name the same stream without a query."""
    return hashlib.sha256(f"{bot_public_id}:{msgid}".encode()).hexdigest()[:32]


def split_stream(text: str) -> tuple[str, str]:
    """The part a stream can show, and the rest (empty unless the answer is very long)."""
    head, rest = split_first(text, MAX_STREAM_BYTES)
    return head, rest.strip()


class StreamStore:
    """The text each stream shows, shared by the worker (writes) and the web (reads)."""

    def __init__(self, bot_public_id: str):
        self.prefix = f"im:wecom_bot:{bot_public_id}:"

    def read(self, stream_id: str) -> dict[str, Any] | None:
        """{"text": …, "finished": bool}, or None before the first token."""
        return cache.get(self.prefix + stream_id)

    def write(self, stream_id: str, text: str, *, finished: bool = False) -> None:
        value = {"text": split_stream(text)[0], "finished": finished}
        cache.set(self.prefix + stream_id, value, STREAM_TTL_SECONDS)


class StreamLive(LiveReply):
    """The worker's side of a stream: each write is shown by WeCom's next poll."""

    # Each update is one cache write that the next poll picks up. WeCom polls about once a
    # second, so writing more often than this only costs the worker CPU.
    interval = 0.3

    def __init__(self, store: StreamStore, stream_id: str):
        self.store = store
        self.stream_id = stream_id

    def start(self, text: str) -> dict[str, Any]:
        self.update(text)
        return {"stream_id": self.stream_id}

    def update(self, text: str) -> None:
        self.store.write(self.stream_id, text)


class WeComBotAdapter(WeComCallbacks):
    key = "wecom_bot"
    label = _("WeCom smart robot (企业微信智能机器人)")
    credential_fields = (
        CredentialField("token", hint=_("Token: 智能机器人 → API 模式")),
        CredentialField("encoding_aes_key", hint=_("EncodingAESKey: 智能机器人 → API 模式")),
        # The aibotid: callbacks naming another robot are refused.
        CredentialField(
            "bot_id", required=False, secret=False, hint=_("Optional: the robot's aibotid")
        ),
        # The display name, stripped as "@name" anywhere in a message.
        CredentialField(
            "bot_name",
            required=False,
            secret=False,
            hint=_("Optional: the robot's display name, stripped from @mentions"),
        ),
    )
    max_message_bytes = MAX_STREAM_BYTES
    answers_every_message = True

    def receive_id(self) -> str:
        return ""

    @cached_property
    def store(self) -> StreamStore:
        return StreamStore(str(self.bot.public_id))

    def encrypted_body(self, request: HttpRequest) -> str:
        encrypted = _get(json_object(request.body), "encrypt")
        if not isinstance(encrypted, str) or not encrypted:
            raise BadPayload("no encrypt field")
        return encrypted

    def parse_plaintext(self, plaintext: str) -> CallbackResult:
        payload = json_object(plaintext)
        self._check_robot(payload)
        msg_type = _text(payload, "msgtype")
        if msg_type == "stream":
            return StreamRefresh(_required(payload, "stream", "id"))
        if msg_type not in ("text", "mixed"):
            return Ignored(f"message type {msg_type or 'unknown'}")
        return self._message(payload, msg_type)

    def _check_robot(self, payload: dict[str, Any]) -> None:
        expected, named = self.credentials.get("bot_id"), _text(payload, "aibotid")
        if expected and named and named != expected:
            raise SignatureInvalid("callback names another robot")

    def _message(self, payload: dict[str, Any], msg_type: str) -> InboundMessage | Ignored:
        msgid, sender = _required(payload, "msgid"), _required(payload, "from", "userid")
        is_group = _text(payload, "chattype") == "group"
        text = self.strip_mention(_content(payload, msg_type), is_group=is_group)
        if not text:
            return Ignored("message without text")
        return InboundMessage(
            external_id=msgid,
            sender=sender,
            chat=(_text(payload, "chatid") or sender) if is_group else sender,
            text=text,
            is_group=is_group,
            reply_context={
                "stream_id": stream_id_for(str(self.bot.public_id), msgid),
                "response_url": _text(payload, "response_url"),
                "started_at": int(time.time()),
            },
        )

    def strip_mention(self, text: str, *, is_group: bool) -> str:
        """The question without the robot's @mention.

        The configured display name may be anywhere and may contain spaces. Without it
        (or when it was renamed) a group message loses its leading @-token, which WeCom
        puts there; only then, so "@Bot @Alice …" keeps Alice.
        """
        name = self.credentials.get("bot_name")
        if name and f"@{name}" in text:
            return re.sub(re.escape(f"@{name}") + r"\s*", "", text).strip()
        return LEADING_MENTION.sub("", text, count=1).strip() if is_group else text.strip()

    def ack(self, result: CallbackResult) -> HttpResponse:
        if isinstance(result, Challenge):
            return HttpResponse(result.body, content_type=result.content_type)
        if isinstance(result, InboundMessage):
            return self._stream_reply(result.reply_context["stream_id"])
        if isinstance(result, StreamRefresh):
            return self._stream_reply(result.stream_id)
        return HttpResponse(b"")

    def _stream_reply(self, stream_id: str) -> HttpResponse:
        """What the stream shows now; a retried message callback gets the same answer."""
        shown = self.store.read(stream_id) or {"text": "", "finished": False}
        # Until the model's first words arrive, an open stream says it is thinking.
        text = shown["text"] if shown["text"] or shown["finished"] else self.thinking_text()
        envelope = self.seal(stream_payload(stream_id, text, shown["finished"]))
        return HttpResponse(json.dumps(envelope), content_type="application/json")

    def thinking_text(self) -> str:
        with override(self.bot.tenant.language):
            return str(THINKING)

    def seal(
        self,
        payload: dict[str, Any],
        *,
        timestamp: str | None = None,
        nonce: str | None = None,
        random_prefix: bytes | None = None,
    ) -> dict[str, str]:
        """The encrypted passive reply, signed with its own timestamp and nonce (fixed by tests)."""
        plaintext = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        encrypted = self.crypto.encrypt(plaintext, random_prefix)
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))
        return {
            "encrypt": encrypted,
            # Replies spell it without the underscore the query string has.
            "msgsignature": self.crypto.signature(timestamp, nonce, encrypted),
            "timestamp": timestamp,
            "nonce": nonce,
        }

    def live(self, reply: OutboundReply) -> LiveReply | None:
        stream_id = reply.reply_context.get("stream_id")
        return StreamLive(self.store, stream_id) if stream_id else None

    def send(self, reply: OutboundReply) -> None:
        context = reply.reply_context
        if _stale(context):
            # WeCom no longer polls this stream; leave it as it was seen.
            self._post_late(context, reply.text)
            return
        stream_id = context.get("stream_id")
        if not stream_id:
            raise DeliveryError("no stream to answer in", permanent=True)
        head, rest = split_stream(reply.text)
        self.store.write(stream_id, head, finished=True)
        if rest:
            self._post_late(context, rest)

    def _post_late(self, context: dict[str, Any], text: str) -> None:
        """One markdown message to the callback's response_url (usable once, for an hour)."""
        url = context.get("response_url") or ""
        # The URL comes from the callback: only ever call WeCom with it, never another host.
        if not url.startswith(settings.WECOM_API_BASE + "/"):
            raise DeliveryError("no usable response_url", permanent=True)
        content, rest = split_stream(text)
        if rest:
            logger.warning(
                "answer cut to %d bytes: response_url takes one message", len(content.encode())
            )
        body = http_json(
            "POST", url, json={"msgtype": "markdown", "markdown": {"content": content}}
        )
        if body.get("errcode", 0) != 0:
            raise wecom_error(urlsplit(url).path, body)


def stream_payload(stream_id: str, content: str, finish: bool) -> dict[str, Any]:
    return {"msgtype": "stream", "stream": {"id": stream_id, "finish": finish, "content": content}}


def _stale(context: dict[str, Any]) -> bool:
    started = context.get("started_at")
    return isinstance(started, int) and time.time() - started > STREAM_WINDOW_SECONDS


def _content(payload: dict[str, Any], msg_type: str) -> str:
    """The message's text: a mixed message's text items joined, its images dropped."""
    if msg_type == "text":
        return _text(payload, "text", "content")
    items = _get(payload, "mixed", "msg_item") or []
    if not isinstance(items, list):
        raise BadPayload("mixed.msg_item is not a list")
    texts = [_text(item, "text", "content") for item in items if _get(item, "msgtype") == "text"]
    return "\n".join(texts)


def _get(value: Any, *path: str) -> Any:
    """value[a][b]…, None where a key is missing; a non-object on the way is a BadPayload."""
    for key in path:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise BadPayload(f"{key}: parent is not an object")
        value = value.get(key)
    return value


def _text(value: Any, *path: str) -> str:
    found = _get(value, *path)
    if found is not None and not isinstance(found, str):
        raise BadPayload(f"{'.'.join(path)} is not a string")
    return found or ""


def _required(value: Any, *path: str) -> str:
    found = _text(value, *path)
    if not found:
        raise BadPayload(f"{'.'.join(path)} is missing")
    return found
