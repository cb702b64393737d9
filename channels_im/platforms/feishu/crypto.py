"""Feishu/Lark event crypto: the AES envelope and the X-Lark-Signature header."""

from __future__ import annotations

import base64
import hashlib
import secrets

from Crypto.Cipher import AES
from Crypto.Util.Padding import pad, unpad

from ..base import BadPayload


class FeishuCipher:
    """AES-256-CBC keyed by SHA-256 of the Encrypt Key; each payload carries its own IV."""

    def __init__(self, encrypt_key: str):
        self._key = hashlib.sha256(encrypt_key.encode()).digest()

    def decrypt(self, encrypted: str) -> str:
        """Decrypt an `encrypt` field; any malformed input raises BadPayload."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except ValueError as exc:  # binascii.Error, or non-ASCII input
            raise BadPayload("ciphertext is not base64") from exc
        # IV plus at least one block, and whole blocks only.
        if len(data) < 2 * AES.block_size or len(data) % AES.block_size:
            raise BadPayload("ciphertext has the wrong length")
        iv, body = data[: AES.block_size], data[AES.block_size :]
        try:
            # unpad is strict PKCS#7: a tampered last block fails here, not downstream.
            plain = unpad(AES.new(self._key, AES.MODE_CBC, iv=iv).decrypt(body), AES.block_size)
            return plain.decode("utf-8")
        except ValueError as exc:  # bad padding, or UnicodeDecodeError
            raise BadPayload("ciphertext does not decrypt") from exc

    def encrypt(self, plaintext: str, iv: bytes | None = None) -> str:
        """Encrypt as Feishu does; `iv` is fixed only by tests."""
        if iv is None:
            iv = secrets.token_bytes(AES.block_size)
        cipher = AES.new(self._key, AES.MODE_CBC, iv=iv)
        body = cipher.encrypt(pad(plaintext.encode(), AES.block_size))
        return base64.b64encode(iv + body).decode("ascii")


def feishu_signature(timestamp: str, nonce: str, encrypt_key: str, raw_body: bytes) -> str:
    """Expected X-Lark-Signature: plain SHA-256 (not HMAC) over the exact bytes received."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + raw_body).hexdigest()
