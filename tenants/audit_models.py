"""The audit trail's table: append-only events, hash-chained per tenant.

Each event's `hash` is SHA-256 over a canonical serialization of its content, which
includes `prev_hash`, the hash of the event before it in the same chain (one chain per
tenant, and one for operator-level events outside any tenant). Editing, deleting or
reordering a row breaks the chain where it happened, and `verify_audit` names that event.
On PostgreSQL the database itself refuses UPDATE and DELETE on the table (pgtrigger).

The tenant is kept as plain values (id and slug), not a foreign key: the trigger refuses
DELETE, so a cascading key would make tenants undeletable, and a protecting one would
too; a deleted tenant's chain stays whole and verifiable. The actor is kept the same way,
so an event still says who acted after the user or key is gone.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any

import pgtrigger
from django.db import models
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

# What a secret field's old and new values are recorded as.
CHANGED = "changed"


class AuditEvent(models.Model):
    """One thing someone did: who, what, to which object, when, from where.

    Written only by `tenants.audit.record`; rows are never updated or deleted.
    """

    class Action(models.TextChoices):
        CREATE = "create", _("create")
        CHANGE = "change", _("change")
        DELETE = "delete", _("delete")
        VIEW = "view", _("view")
        SEARCH = "search", _("search")
        EXPORT = "export", _("export")
        SIGN_IN = "sign_in", _("sign-in")
        SIGN_IN_FAILED = "sign_in_failed", _("failed sign-in")
        PURGE = "purge", _("purge")
        LEGAL_HOLD_ON = "legal_hold_on", _("legal hold on")
        LEGAL_HOLD_OFF = "legal_hold_off", _("legal hold off")
        KEY_CREATED = "key_created", _("API key created")
        KEY_REVOKED = "key_revoked", _("API key revoked")

    # Set by record() before the hash is computed, so not auto_now_add.
    created_at = models.DateTimeField(_("time"), db_index=True)
    # None: an operator-level event, in the operator's chain.
    tenant_id = models.BigIntegerField(_("tenant id"), null=True, blank=True)
    tenant_slug = models.CharField(_("tenant"), max_length=64, blank=True)
    actor_user_id = models.BigIntegerField(_("user id"), null=True, blank=True)
    actor_key_id = models.BigIntegerField(_("API key id"), null=True, blank=True)
    actor_label = models.CharField(_("actor"), max_length=200)
    action = models.CharField(_("action"), max_length=32, choices=Action.choices)
    object_type = models.CharField(_("object type"), max_length=100, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    object_label = models.CharField(_("object"), max_length=300, blank=True)
    changes = models.JSONField(
        _("changed fields"),
        default=dict,
        blank=True,
        help_text=_('{field: {"old": …, "new": …}}; a secret field only as "changed".'),
    )
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64, blank=True)
    hash = models.CharField(_("hash"), max_length=64)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["tenant_id", "id"], name="audit_chain_order")]
        constraints = [
            # A chain never forks: two events cannot follow the same one. record()'s lock
            # keeps writers in line; this makes the database refuse a fork regardless.
            models.UniqueConstraint(
                Coalesce("tenant_id", models.Value(0)), "prev_hash", name="audit_chain_no_fork"
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="audit_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit trail")

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_label}".strip()

    def content(self) -> dict[str, Any]:
        """What the hash covers: every field but the id (unknown before the insert, and
        the link covers the order) and the hash itself."""
        data = {name: getattr(self, name) for name in HASHED_FIELDS}
        data["created_at"] = self.created_at.astimezone(UTC).isoformat(timespec="microseconds")
        return data

    def compute_hash(self) -> str:
        """SHA-256, hex, of the canonical JSON of `content()`."""
        text = json.dumps(
            _by_value(self.content()), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )
        return hashlib.sha256(text.encode()).hexdigest()


HASHED_FIELDS = (
    "created_at", "tenant_id", "tenant_slug", "actor_user_id", "actor_key_id", "actor_label",
    "action", "object_type", "object_id", "object_label", "changes", "detail", "ip",
    "prev_hash",
)  # fmt: skip


def _by_value(value: Any) -> Any:
    """Numbers as the database gives them back: PostgreSQL's jsonb returns 1e16 as an
    integer, so a whole float is hashed as the integer it equals."""
    if isinstance(value, dict):
        return {key: _by_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_by_value(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
