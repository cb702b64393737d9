"""WeCom (企业微信) self-built app: encrypted XML callbacks in, `message/send` out."""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from .base import (
    BadPayload,
    CallbackResult,
    Challenge,
    CredentialField,
    DeliveryError,
    Ignored,
    InboundMessage,
    OutboundReply,
    PlatformAdapter,
    SignatureInvalid,
    TokenCache,
    http_json,
    secret_id,
)
from .text import split_utf8
from .wxcrypto import WxBizMsgCrypt

# WeCom retries within seconds; a callback signed more than an hour ago is a replay.
MAX_CLOCK_SKEW_SECONDS = 3600
# invalid access_token, access_token expired, invalid credential: refresh once and resend.
TOKEN_ERRORS = {40014, 42001, 40001}


def parse_xml(body: bytes | str) -> Element:
    """A hardened parse: entity tricks and broken XML are a BadPayload, never a 500."""
    try:
        return fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise BadPayload(f"unreadable XML: {type(exc).__name__}") from exc


def check_timestamp(timestamp: str) -> None:
    try:
        skew = abs(time.time() - int(timestamp))
    except ValueError as exc:
        raise SignatureInvalid("timestamp is not a number") from exc
    if skew > MAX_CLOCK_SKEW_SECONDS:
        raise SignatureInvalid("timestamp outside the allowed window")


class WeComCallbacks(PlatformAdapter):
    """What WeCom's app and smart robot callbacks share: the GET URL check and the
    signed, encrypted envelope. Subclasses say where the ciphertext sits and what it holds."""

    def receive_id(self) -> str:
        """The id sealed into every envelope: the CorpID for an app, "" for a smart robot."""
        raise NotImplementedError

    def encrypted_body(self, request: HttpRequest) -> str:
        """The ciphertext carried by a POST body; raise BadPayload if there is none."""
        raise NotImplementedError

    def parse_plaintext(self, plaintext: str) -> CallbackResult:
        """The result for a decrypted POST body."""
        raise NotImplementedError

    @cached_property
    def crypto(self) -> WxBizMsgCrypt:
        creds = self.credentials
        try:
            return WxBizMsgCrypt(creds["token"], creds["encoding_aes_key"], self.receive_id())
        except (KeyError, ValueError) as exc:
            raise SignatureInvalid("bot credentials are incomplete") from exc

    def verify(self, request: HttpRequest) -> None:
        query = request.GET
        timestamp = query.get("timestamp", "")
        check_timestamp(timestamp)
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

    def parse(self, request: HttpRequest) -> CallbackResult:
        plaintext = self.crypto.decrypt(self._encrypted(request))
        if request.method == "GET":
            return Challenge(plaintext)
        return self.parse_plaintext(plaintext)


class WeComAppAdapter(WeComCallbacks):
    key = "wecom"
    label = _("WeCom self-built app (企业微信自建应用)")
    credential_fields = (
        CredentialField("corp_id", secret=False, hint=_("企业ID (CorpID): 我的企业 → 企业信息")),
        CredentialField("agent_id", secret=False, hint=_("AgentId: 应用管理 → the app")),
        CredentialField("secret", hint=_("Secret: 应用管理 → the app")),
        CredentialField("token", hint=_("Token: the app → 接收消息 → 设置API接收")),
        CredentialField(
            "encoding_aes_key", hint=_("EncodingAESKey: the app → 接收消息 → 设置API接收")
        ),
    )
    max_message_bytes = 2048

    def receive_id(self) -> str:
        return self.credentials["corp_id"]

    def encrypted_body(self, request: HttpRequest) -> str:
        node = parse_xml(request.body).find("Encrypt")
        if node is None or not node.text:
            raise BadPayload("no Encrypt element")
        return node.text

    def parse_plaintext(self, plaintext: str) -> CallbackResult:
        return self.parse_message(parse_xml(plaintext.encode()))

    def parse_message(self, xml: Element) -> CallbackResult:
        msg_type = xml.findtext("MsgType", "")
        if msg_type != "text":
            return Ignored(f"message type {msg_type or 'unknown'}")
        msg_id, sender = xml.findtext("MsgId", ""), xml.findtext("FromUserName", "")
        if not msg_id or not sender:
            raise BadPayload("text message without MsgId or FromUserName")
        return InboundMessage(
            external_id=msg_id, sender=sender, chat=sender, text=xml.findtext("Content", "")
        )

    def ack(self, result: CallbackResult) -> HttpResponse:
        if isinstance(result, Challenge):
            return HttpResponse(result.body, content_type=result.content_type)
        # An empty 200 means "received, no passive reply"; the answer goes by message/send.
        return HttpResponse(b"")

    def send(self, reply: OutboundReply) -> None:
        def send_one(index: int, chunk: str) -> None:
            message = {"touser": reply.recipient, "msgtype": "text", "agentid": self.agent_id}
            self._call("/cgi-bin/message/send", {**message, "text": {"content": chunk}})

        reply.send_parts(split_utf8(reply.text, self.max_message_bytes), send_one)

    def _call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST with the cached token; on a token error refresh it once and resend."""
        body = self._post(path, payload)
        if body.get("errcode") in TOKEN_ERRORS:
            self.tokens.invalidate()
            body = self._post(path, payload)
        if body.get("errcode", 0) != 0:
            raise wecom_error(path, body)
        return body

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        params = {"access_token": self.tokens.get()}
        return http_json("POST", settings.WECOM_API_BASE + path, params=params, json=payload)

    @property
    def agent_id(self) -> int:
        try:
            return int(self.credentials["agent_id"])
        except (KeyError, ValueError) as exc:
            raise DeliveryError(
                "agent_id must be the app's numeric AgentId", permanent=True
            ) from exc

    @cached_property
    def tokens(self) -> TokenCache:
        creds = self.credentials
        return TokenCache(
            f"wecom:{creds['corp_id']}:{secret_id(creds['secret'])}", self._fetch_token
        )

    def _fetch_token(self) -> tuple[str, int]:
        creds = self.credentials
        body = http_json(
            "GET",
            settings.WECOM_API_BASE + "/cgi-bin/gettoken",
            params={"corpid": creds["corp_id"], "corpsecret": creds["secret"]},
        )
        if body.get("errcode", 0) != 0 or not body.get("access_token"):
            raise wecom_error("/cgi-bin/gettoken", body)
        return body["access_token"], int(body.get("expires_in", 7200))


# Codes worth retrying: system busy, API frequency limits.
TRANSIENT_CODES = {-1, 45009, 45033, 45011}


def wecom_error(path: str, body: dict[str, Any]) -> DeliveryError:
    code = body.get("errcode")
    message = f"WeCom {path}: errcode {code} {str(body.get('errmsg', ''))[:200]}"
    return DeliveryError(message, permanent=code not in TRANSIENT_CODES, code=code)
