"""Model fields whose values are encrypted at rest (see tenants.encryption)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.db import models

from . import encryption


class EncryptedJSONField(models.TextField):
    """A dict stored as one AES-GCM ciphertext; the database never sees the plaintext."""

    if TYPE_CHECKING:  # what django-stubs reads as the attribute's type: a dict, not text
        _pyi_private_set_type: dict[str, Any]  # type: ignore[assignment]
        _pyi_private_get_type: dict[str, Any]  # type: ignore[assignment]

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return {}
        return json.loads(encryption.decrypt(value))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, dict):
            return value
        if not value:
            return {}
        return json.loads(value)

    def get_prep_value(self, value: Any) -> str:
        return encryption.encrypt(json.dumps(value or {}, ensure_ascii=False, sort_keys=True))
