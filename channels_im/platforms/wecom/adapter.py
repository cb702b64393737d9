"""WeCom (企业微信) self-built app: encrypted XML callbacks in, `message/send` out.

`WeComCallbacks` is what the app and the smart robot (`wecom_bot`) share: the GET URL
check and the signed, encrypted envelope (spec §1.1–1.3).
"""

from __future__ import annotations

import time
from functools import cached_property
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from common.selftest import Finding

from .. import base
from ..text import split_utf8
from .checks import app_checks
from .client import WeComClient
from .crypto import WxBizMsgCrypt

# WeCom retries within seconds; a callback signed more than an hour ago is a replay.
MAX_CLOCK_SKEW_SECONDS = 3600


def parse_xml(body: bytes | str) -> Element:
    """A hardened parse: entity tricks and broken XML are a BadPayload, never a 500."""
    try:
        return fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise base.BadPayload(f"unreadable XML: {type(exc).__name__}") from exc


class WeComCallbacks(base.PlatformAdapter):
    """What WeCom's app and smart robot callbacks share: the GET URL check and the
    signed, encrypted envelope. Subclasses say where the ciphertext sits and what it holds."""

    def receive_id(self) -> str:
        """The id sealed into every envelope: the CorpID for an app, "" for a smart robot."""
        raise NotImplementedError

    def encrypted_body(self, request: HttpRequest) -> str:
        """The ciphertext carried by a POST body; raise base.BadPayload if there is none."""
        raise NotImplementedError

    def parse_plaintext(self, plaintext: str) -> base.CallbackResult:
        """The result for a decrypted POST body."""
        raise NotImplementedError

    @cached_property
    def crypto(self) -> WxBizMsgCrypt:
        creds = self.credentials
        try:
            return WxBizMsgCrypt(creds["token"], creds["encoding_aes_key"], self.receive_id())
        except (KeyError, ValueError) as exc:
            raise base.SignatureInvalid("bot credentials are incomplete") from exc

    def verify(self, request: HttpRequest) -> None:
        query = request.GET
        timestamp = query.get("timestamp", "")
        base.check_timestamp(timestamp, now=time.time(), max_skew=MAX_CLOCK_SKEW_SECONDS)
        self.crypto.verify(
            query.get("msg_signature", ""),
            timestamp,
            query.get("nonce", ""),
            self._encrypted(request),
        )

    def _encrypted(self, request: HttpRequest) -> str:
        if request.method == "GET":
            # Some senders do not percent-encode '+', which arrives as a space.
            return request.GET.get("echostr", "").replace(" ", "+")
        return self.encrypted_body(request)

    def parse(self, request: HttpRequest) -> base.CallbackResult:
        plaintext = self.crypto.decrypt(self._encrypted(request))
        if request.method == "GET":
            return base.Challenge(plaintext)
        return self.parse_plaintext(plaintext)


class WeComAppAdapter(WeComCallbacks):
    label = _("WeCom self-built app (企业微信自建应用)")
    max_message_bytes = 2048
    credential_fields = (
        base.CredentialField(
            "corp_id", secret=False, hint=_("企业ID (CorpID): 我的企业 → 企业信息")
        ),
        base.CredentialField(
            "agent_id", secret=False, numeric=True, hint=_("AgentId: 应用管理 → the app")
        ),
        base.CredentialField("secret", hint=_("Secret: 应用管理 → the app")),
        base.CredentialField("token", hint=_("Token: the app → 接收消息 → 设置API接收")),
        base.CredentialField(
            "encoding_aes_key", hint=_("EncodingAESKey: the app → 接收消息 → 设置API接收")
        ),
        base.CredentialField.optional(
            "message_format",
            _('Optional: "text" if staff read the app in WeChat, which shows no markdown'),
        ),
    )

    def receive_id(self) -> str:
        return self.credentials["corp_id"]

    def encrypted_body(self, request: HttpRequest) -> str:
        node = parse_xml(request.body).find("Encrypt")
        if node is None or not node.text:
            raise base.BadPayload("no Encrypt element")
        return node.text

    def parse_plaintext(self, plaintext: str) -> base.CallbackResult:
        return self.parse_message(parse_xml(plaintext.encode()))

    def parse_message(self, xml: Element) -> base.CallbackResult:
        """A person's message (spec §1.2); an app chat is always one to one, so every
        message is addressed to the bot, whatever its type."""
        msg_type = xml.findtext("MsgType", "")
        if msg_type == "event" or not msg_type:
            return base.Ignored(f"event {xml.findtext('Event', '') or 'unknown'}")
        msg_id, sender = xml.findtext("MsgId", ""), xml.findtext("FromUserName", "")
        if not msg_id or not sender:
            raise base.BadPayload("message without MsgId or FromUserName")
        # A voice message carries WeCom's transcript when the app has recognition on.
        text = xml.findtext("Content" if msg_type == "text" else "Recognition", "")
        readable = msg_type == "text" or bool(text.strip())
        return base.InboundMessage(
            external_id=msg_id,
            sender=sender,
            chat=sender,
            text=text,
            kind=base.TEXT if readable else msg_type,
        )

    def ack(self, result: base.CallbackResult) -> HttpResponse:
        if isinstance(result, base.Challenge):
            return HttpResponse(result.body, content_type=result.content_type)
        # An empty 200 means "received, no passive reply"; the answer goes by message/send.
        return HttpResponse(b"")

    def send(self, reply: base.OutboundReply) -> None:
        # Models write markdown, which the WeCom client renders; WeChat (微信插件) shows
        # markdown messages as unsupported, so a bot read there sends text.
        msgtype = "text" if self.credentials.get("message_format") == "text" else "markdown"

        def send_one(index: int, chunk: str) -> None:
            message = {"touser": reply.recipient, "msgtype": msgtype, "agentid": self.agent_id}
            message[msgtype] = {"content": chunk}
            self.client.call("POST", "/cgi-bin/message/send", message)

        reply.send_parts(split_utf8(reply.text, self.max_message_bytes), send_one)

    @property
    def agent_id(self) -> int:
        try:
            return int(self.credentials["agent_id"])
        except (KeyError, ValueError) as exc:
            raise base.DeliveryError(
                "agent_id must be the app's numeric AgentId", permanent=True
            ) from exc

    @cached_property
    def client(self) -> WeComClient:
        return WeComClient(self.credentials["corp_id"], self.credentials["secret"])

    def self_test(self, timeout: float) -> list[Finding]:
        return app_checks(self, timeout)
