"""Tencent's WXBizMsgCrypt envelope, shared by WeCom apps, WeCom smart robots and DingTalk events.

One algorithm, three callers: only the receive id differs (the CorpID for a WeCom app, ""
for a WeCom smart robot, the AppKey for DingTalk event subscriptions).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from typing import TYPE_CHECKING

from Crypto.Cipher import AES

from ..base import BadPayload, SignatureInvalid

if TYPE_CHECKING:
    from Crypto.Cipher._mode_cbc import CbcMode

# The envelope pads to 32 bytes, not to the AES block size, so padding is done by hand.
_PAD_BLOCK = 32
_RANDOM_LEN = 16
_LEN_FIELD = 4
_RANDOM_ALPHABET = string.ascii_letters + string.digits


class WxBizMsgCrypt:
    """Signs, encrypts and decrypts one bot's callback messages."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str):
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except ValueError as exc:
            raise ValueError("EncodingAESKey is not base64") from exc
        if len(encoding_aes_key) != 43 or len(key) != 32:
            raise ValueError("EncodingAESKey must be 43 characters decoding to 32 bytes")
        self.token = token
        self.receive_id = receive_id.encode()
        self._key = key

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        """The msg_signature: SHA-1 over the four strings sorted by code point."""
        parts = sorted([self.token, timestamp, nonce, encrypted])
        # SHA-1 is fixed by the protocol, not our choice.
        return hashlib.sha1("".join(parts).encode()).hexdigest()  # noqa: S324

    def verify(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Raise SignatureInvalid unless `signature` matches; compared in constant time."""
        expected = self.signature(timestamp, nonce, encrypted)
        # Bytes, because compare_digest rejects non-ASCII str instead of returning False.
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise SignatureInvalid("msg_signature mismatch")

    def encrypt(self, plaintext: str, random_prefix: bytes | None = None) -> str:
        """Wrap `plaintext` in the envelope; `random_prefix` is fixed only by tests."""
        if random_prefix is None:
            random_prefix = "".join(
                secrets.choice(_RANDOM_ALPHABET) for _ in range(_RANDOM_LEN)
            ).encode()
        if len(random_prefix) != _RANDOM_LEN:
            raise ValueError(f"random prefix must be {_RANDOM_LEN} bytes")
        message = plaintext.encode()
        body = random_prefix + len(message).to_bytes(_LEN_FIELD, "big") + message
        padded = _pad(body + self.receive_id)
        encrypted = self._cipher().encrypt(padded)
        return base64.b64encode(encrypted).decode("ascii")

    def decrypt(self, encrypted: str) -> str:
        """Unwrap an envelope; any malformed or foreign input raises BadPayload."""
        content = _unpad(self._aes_decrypt(encrypted))
        header_len = _RANDOM_LEN + _LEN_FIELD
        if len(content) < header_len:
            raise BadPayload("envelope too short")
        msg_len = int.from_bytes(content[_RANDOM_LEN:header_len], "big")
        if header_len + msg_len > len(content):
            raise BadPayload("message length exceeds envelope")
        message = content[header_len : header_len + msg_len]
        if content[header_len + msg_len :] != self.receive_id:
            raise BadPayload("envelope addressed to another receive id")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadPayload("message is not UTF-8") from exc

    def _aes_decrypt(self, encrypted: str) -> bytes:
        try:
            data = base64.b64decode(encrypted, validate=True)
        except ValueError as exc:  # binascii.Error, or non-ASCII input
            raise BadPayload("ciphertext is not base64") from exc
        if not data or len(data) % AES.block_size:
            raise BadPayload("ciphertext length is not a whole number of AES blocks")
        return self._cipher().decrypt(data)

    def _cipher(self) -> CbcMode:
        # The IV is fixed by the protocol: the first 16 bytes of the key.
        return AES.new(self._key, AES.MODE_CBC, iv=self._key[: AES.block_size])


def _pad(data: bytes) -> bytes:
    n = _PAD_BLOCK - len(data) % _PAD_BLOCK
    return data + bytes([n]) * n


def _unpad(data: bytes) -> bytes:
    """Strict PKCS#7/32: the official libraries read a bad pad as 0; a tamper must fail here."""
    n = data[-1]
    if not 1 <= n <= _PAD_BLOCK or data[-n:] != bytes([n]) * n:
        raise BadPayload("bad padding")
    return data[:-n]
