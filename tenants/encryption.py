"""AES-256-GCM encryption of secrets at rest, with key rotation.

FIELD_ENCRYPTION_KEY is one key or a comma-separated list: the first encrypts, all
decrypt. Each ciphertext names its key by a short id, so a rotated-out key still reads
old rows until `python manage.py reencrypt_secrets` has rewritten them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from functools import cache

from Crypto.Cipher import AES
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "enc1"  # format version: enc1:<key id>:<base64 nonce‖ciphertext‖tag>
NONCE_BYTES = 12
TAG_BYTES = 16


class SecretDecryptionError(Exception):
    """A stored secret cannot be read with any configured key."""


@cache
def _keys(raw: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for item in (part.strip() for part in raw.split(",")):
        try:
            key = base64.urlsafe_b64decode(item)
        except ValueError as exc:
            raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is not base64") from exc
        if len(key) != 32:
            raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY entries must be 32 bytes each")
        keys[key_id(key)] = key
    return keys


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def configured_keys() -> dict[str, bytes]:
    return _keys(settings.FIELD_ENCRYPTION_KEY)


def encrypt(plaintext: str) -> str:
    kid, key = next(iter(configured_keys().items()))
    cipher = AES.new(key, AES.MODE_GCM, nonce=secrets.token_bytes(NONCE_BYTES))
    ciphertext, tag = cipher.encrypt_and_digest(plaintext.encode())
    blob = base64.b64encode(bytes(cipher.nonce) + ciphertext + tag).decode()
    return f"{PREFIX}:{kid}:{blob}"


def decrypt(stored: str) -> str:
    try:
        prefix, kid, blob = stored.split(":", 2)
        key = configured_keys()[kid]
        raw = base64.b64decode(blob, validate=True)
    except (ValueError, KeyError) as exc:
        raise SecretDecryptionError("unknown format or key id") from exc
    if prefix != PREFIX or len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SecretDecryptionError("unknown format")
    nonce, body, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
    try:
        return AES.new(key, AES.MODE_GCM, nonce=nonce).decrypt_and_verify(body, tag).decode()
    except ValueError as exc:
        raise SecretDecryptionError("ciphertext was tampered with or the key is wrong") from exc


def is_current(stored: str) -> bool:
    """Whether the value is encrypted under the key that encrypts today."""
    current = next(iter(configured_keys()))
    return stored.startswith(f"{PREFIX}:{current}:")


def mask(value: str) -> str:
    """What the admin and logs may show of a secret: its length class and last 4 chars."""
    if not value:
        return ""
    tail = value[-4:] if len(value) >= 12 else ""
    return f"••••••{tail}"
