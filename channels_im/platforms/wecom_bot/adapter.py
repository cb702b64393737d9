"""WeCom smart robot (企业微信智能机器人, API mode): encrypted JSON callbacks, answers streamed.

A smart robot answers inside WeCom's own requests, from the streams in `stream.py`. What
cannot go into the stream (too late, too long) goes once to the message's `response_url`.
It shares the envelope and the URL check with the WeCom app (`wecom.adapter`) and needs
no access token.
"""

from __future__ import annotations

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
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import override

from common.selftest import Finding

from .. import base
from ..client import http_json
from ..wecom.adapter import WeComCallbacks
from ..wecom.checks import robot_checks
from ..wecom.client import WeComClient
from .stream import (
    MAX_STREAM_BYTES,
    StreamLive,
    StreamStore,
    split_stream,
    stream_id_for,
    stream_payload,
)

logger = logging.getLogger(__name__)

THINKING = _("Thinking…")
# WeCom stops polling 6 minutes after the user's message. An answer finished later than
# this goes by response_url; the margin covers the gap between two polls.
STREAM_WINDOW_SECONDS = 330
# A leading "@Display Name" token, however the admin named the robot (WeCom keeps it).
LEADING_MENTION = re.compile(r"^\s*@\S+\s*")


@dataclass(frozen=True)
class StreamRefresh(base.PlatformCallback):
    """WeCom polling for the text of a stream we named; answered from the cache."""

    stream_id: str


class WeComBotAdapter(WeComCallbacks):
    label = _("WeCom smart robot (企业微信智能机器人)")
    max_message_bytes = MAX_STREAM_BYTES
    answers_every_message = True
    credential_fields = (
        base.CredentialField("token", hint=_("Token: 智能机器人 → API 模式")),
        base.CredentialField("encoding_aes_key", hint=_("EncodingAESKey: 智能机器人 → API 模式")),
        # The aibotid: callbacks naming another robot are refused.
        base.CredentialField.optional("bot_id", _("Optional: the robot's aibotid")),
        # The display name, stripped as "@name" anywhere in a message.
        base.CredentialField.optional(
            "bot_name",
            _(
                "The robot's display name, if it contains a space: WeCom cannot tell "
                "where such a name ends, so without it only its first word is removed"
            ),
        ),
    )

    def receive_id(self) -> str:
        return ""

    def self_test(self, timeout: float) -> list[Finding]:
        return robot_checks(self.credentials)

    @cached_property
    def store(self) -> StreamStore:
        return StreamStore(str(self.bot.public_id))

    def encrypted_body(self, request: HttpRequest) -> str:
        encrypted = _get(base.json_object(request.body), "encrypt")
        if not isinstance(encrypted, str) or not encrypted:
            raise base.BadPayload("no encrypt field")
        return encrypted

    def parse_plaintext(self, plaintext: str) -> base.CallbackResult:
        payload = base.json_object(plaintext)
        self._check_robot(payload)
        msg_type = _text(payload, "msgtype")
        if msg_type == "stream":
            return StreamRefresh(_required(payload, "stream", "id"))
        if msg_type in ("event", ""):
            return base.Ignored(f"event {_text(payload, 'event', 'eventtype') or 'unknown'}")
        # A robot only hears what is addressed to it (a group @mention, a single chat), so
        # a message of any other type gets a word on what it can read.
        return self._message(payload, msg_type)

    def _check_robot(self, payload: dict[str, Any]) -> None:
        expected, named = self.credentials.get("bot_id"), _text(payload, "aibotid")
        if expected and named and named != expected:
            raise base.SignatureInvalid("callback names another robot")

    def _message(
        self, payload: dict[str, Any], msg_type: str
    ) -> base.InboundMessage | base.Ignored:
        msgid, sender = _required(payload, "msgid"), _required(payload, "from", "userid")
        base.check_identifier("msgid", msgid)  # before it names the stream
        is_group = _text(payload, "chattype") == "group"
        text = self.strip_mention(_content(payload, msg_type), is_group=is_group)
        if not text and msg_type == "text":
            return base.Ignored("message without text")
        if text and (quoted := _content(_get(payload, "quote"), "quote")):
            # A reply to an earlier message: the model needs what it replies to.
            text = "\n".join(f"> {line}" for line in quoted.splitlines()) + "\n\n" + text
        return base.InboundMessage(
            external_id=msgid,
            sender=sender,
            chat=(_text(payload, "chatid") or sender) if is_group else sender,
            text=text,
            is_group=is_group,
            # A mixed message of pictures only is a picture to us.
            kind=base.TEXT if text else "image" if msg_type == "mixed" else msg_type,
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

    def ack(self, result: base.CallbackResult) -> HttpResponse:
        if isinstance(result, base.Challenge):
            return HttpResponse(result.body, content_type=result.content_type)
        if isinstance(result, base.InboundMessage):
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

    def live(self, reply: base.OutboundReply) -> base.LiveReply | None:
        stream_id = reply.reply_context.get("stream_id")
        return StreamLive(self.store, stream_id) if stream_id else None

    def send(self, reply: base.OutboundReply) -> None:
        context = reply.reply_context
        if _stale(context):
            # WeCom no longer polls this stream; leave it as it was seen.
            self._post_late(context, reply.text)
            return
        stream_id = context.get("stream_id")
        if not stream_id:
            raise base.DeliveryError("no stream to answer in", permanent=True)
        head, rest = split_stream(reply.text)
        self.store.write(stream_id, head, finished=True)
        if rest:
            self._post_late(context, rest)

    def _post_late(self, context: dict[str, Any], text: str) -> None:
        """One markdown message to the callback's response_url (usable once, for an hour)."""
        url = context.get("response_url") or ""
        # The URL comes from the callback: only ever call WeCom with it, never another host.
        if not url.startswith(settings.WECOM_API_BASE + "/"):
            raise base.DeliveryError("no usable response_url", permanent=True)
        content, rest = split_stream(text)
        if rest:
            logger.warning(
                "answer cut to %d bytes: response_url takes one message", len(content.encode())
            )
        body = http_json(
            "POST", url, json={"msgtype": "markdown", "markdown": {"content": content}}
        )
        WeComClient.raise_for_code(urlsplit(url).path, body)


def _stale(context: dict[str, Any]) -> bool:
    started = context.get("started_at")
    return isinstance(started, int) and time.time() - started > STREAM_WINDOW_SECONDS


def _content(payload: Any, msg_type: str) -> str:
    """The text of a message (or of the one it quotes, `msg_type` "quote"): a text's, a
    mixed message's text items joined (its pictures dropped), a voice message's
    transcript; "" for types without text."""
    if payload is None:
        return ""
    if msg_type == "quote":
        msg_type = _text(payload, "msgtype")
    if msg_type in ("text", "voice"):
        return _text(payload, msg_type, "content")
    if msg_type != "mixed":
        return ""
    items = _get(payload, "mixed", "msg_item") or []
    if not isinstance(items, list):
        raise base.BadPayload("mixed.msg_item is not a list")
    texts = [_content(item, "quote") for item in items if _get(item, "msgtype") == "text"]
    return "\n".join(texts)


def _get(value: Any, *path: str) -> Any:
    """value[a][b]…, None where a key is missing; a non-object on the way is a BadPayload."""
    for key in path:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise base.BadPayload(f"{key}: parent is not an object")
        value = value.get(key)
    return value


def _text(value: Any, *path: str) -> str:
    found = _get(value, *path)
    if found is not None and not isinstance(found, str):
        raise base.BadPayload(f"{'.'.join(path)} is not a string")
    return found or ""


def _required(value: Any, *path: str) -> str:
    found = _text(value, *path)
    if not found:
        raise base.BadPayload(f"{'.'.join(path)} is missing")
    return found
