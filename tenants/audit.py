"""Writing the audit trail: `record()` is the one way in.

Every surface calls it through one hook of its own: the tenant-scoped admin (changes),
the log admin (looks), the REST API (changes and log reads), the sign-in signals and
apply_config. `stored`, `saved` and `deleting` turn a model save or delete into the
right event with its changed fields; sections that have no model save (a search, an
export, a retention purge, a legal hold) call `record` directly.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from axes.helpers import get_client_ip_address
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model
from django.http import HttpRequest
from django.utils import timezone

from .audit_models import CHANGED, AuditEvent
from .fields import EncryptedJSONField
from .models import ApiKey, Tenant

Action = AuditEvent.Action

# Fields recorded only as "changed", besides encrypted ones.
SECRET_FIELD_NAMES = frozenset({"password", "hashed_key"})
# A longer text (a search, a system prompt) is cut here, marked with "…".
MAX_TEXT = 10_000
# pg_advisory_xact_lock's first key: this lock's namespace (b"AUDI").
LOCK_NAMESPACE = 0x41554449


@dataclass(frozen=True)
class Actor:
    """Who acted: a user, an API key, or the system (a command, a beat task)."""

    label: str
    user_id: int | None = None
    key_id: int | None = None

    @classmethod
    def of(cls, request: Any) -> Actor:
        """The request's API key (DRF sets `request.auth`), else its signed-in user,
        else "anonymous"."""
        key = getattr(request, "auth", None)
        if isinstance(key, ApiKey):
            return cls(label=f"API key {key}", key_id=key.pk)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return cls.user(user)
        return cls(label="anonymous")

    @classmethod
    def user(cls, user: Any) -> Actor:
        return cls(label=user.get_username(), user_id=user.pk)

    @classmethod
    def system(cls, name: str) -> Actor:
        """A process acting on its own, e.g. Actor.system("retention")."""
        return cls(label=f"system: {name}")


def record(
    action: str,
    *,
    tenant: Tenant | None,
    obj: Model | type[Model] | None = None,
    request: HttpRequest | Any = None,
    actor: Actor | None = None,
    changes: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to `tenant`'s chain (None: the operator's chain) and return it.

    - action: an `AuditEvent.Action` value.
    - obj: the model instance acted on, or the model class for an action on many rows
      (a search, an export, a purge); it gives the object type, id and label.
    - request: a Django or DRF request; it gives the actor (unless `actor` is given)
      and the client's IP address. One of `request` and `actor` is required.
    - changes: {field: {"old": …, "new": …}} or {field: "changed"} for a secret.
    - detail: anything else worth keeping, e.g. {"query": …, "rows": 120}.
    Values must be JSON-serializable (dates, UUIDs and decimals are turned into text).

    Runs in a transaction of its own (or the caller's), holding the chain's lock on
    PostgreSQL until that transaction ends, so that concurrent writers of one chain
    line up. Raises ValueError without a request or an actor; database errors propagate,
    so an action whose event cannot be written fails with it.
    """
    if actor is None and request is None:
        raise ValueError("record() needs a request or an actor")
    who = actor or Actor.of(request)
    event = AuditEvent(
        tenant_id=tenant.pk if tenant else None,
        tenant_slug=tenant.slug if tenant else "",
        actor_user_id=who.user_id,
        actor_key_id=who.key_id,
        actor_label=_cut(who.label, 200),
        action=action,
        changes=_plain(changes or {}),
        detail=_plain(detail or {}),
        ip=_client_ip(request),
        **_object_fields(obj),
    )
    with transaction.atomic():
        _lock_chain(event.tenant_id)
        last = AuditEvent.objects.filter(tenant_id=event.tenant_id).order_by("-id").first()
        event.prev_hash = last.hash if last else ""
        event.created_at = timezone.now()
        event.hash = event.compute_hash()
        event.save(force_insert=True)
    return event


def stored(obj: Model) -> Model | None:
    """The row as the database holds it now (before a save), or None for a new one."""
    if obj._state.adding:
        return None
    return type(obj)._default_manager.filter(pk=obj.pk).first()


def saved(
    obj: Model, before: Model | None, *, request: Any = None, actor: Actor | None = None
) -> AuditEvent | None:
    """Record that `obj` was just created (`before` None) or changed from `before`
    (`stored(obj)`, read before the save). A change that changed nothing records
    nothing. An API key's creation and deactivation are key_created / key_revoked; a
    save that sets or lifts a tenant's legal hold (a new tenant created under one, too)
    is legal_hold_on / legal_hold_off, with every field it changed."""
    changes = diff(before, obj)
    if before is not None and not changes:
        return None
    action = Action.CREATE if before is None else Action.CHANGE
    if isinstance(obj, ApiKey) and before is None:
        action = Action.KEY_CREATED
    elif isinstance(obj, ApiKey) and changes.get("is_active", {}).get("new") is False:
        action = Action.KEY_REVOKED
    elif isinstance(obj, Tenant) and (hold := changes.get("legal_hold")):
        if hold["new"]:
            action = Action.LEGAL_HOLD_ON
        elif before is not None:
            action = Action.LEGAL_HOLD_OFF
    return record(
        action, tenant=owning_tenant(obj), obj=obj, request=request, actor=actor, changes=changes
    )


def deleting(obj: Model, *, request: Any = None, actor: Actor | None = None) -> AuditEvent:
    """Record that `obj` is about to be deleted; call it in the deletion's transaction.
    Deleting an API key revokes it, and is recorded as key_revoked."""
    if isinstance(obj, ApiKey):
        return record(
            Action.KEY_REVOKED,
            tenant=owning_tenant(obj),
            obj=obj,
            request=request,
            actor=actor,
            detail={"deleted": True},
        )
    return record(Action.DELETE, tenant=owning_tenant(obj), obj=obj, request=request, actor=actor)


def owning_tenant(obj: Model) -> Tenant | None:
    """The tenant whose chain records changes to `obj`: the tenant itself, the row's
    `tenant`, or None (the operator's chain) for a row outside any tenant."""
    if isinstance(obj, Tenant):
        return obj
    tenant = getattr(obj, "tenant", None)
    return tenant if isinstance(tenant, Tenant) else None


def diff(before: Model | None, after: Model) -> dict[str, Any]:
    """The fields whose values differ, as record()'s `changes`. Against None (a new
    row), every field that has a value. Secrets appear only as "changed"; for an
    encrypted dict (a bot's credentials), each changed key does, by name."""
    changes: dict[str, Any] = {}
    for field in after._meta.concrete_fields:
        if field.primary_key or getattr(field, "auto_now", False):
            continue
        if getattr(field, "auto_now_add", False):
            continue
        old = None if before is None else field.value_from_object(before)
        new = field.value_from_object(after)
        if old == new or (before is None and new in (None, "")):
            continue
        if isinstance(field, EncryptedJSONField):
            old, new = old or {}, new or {}
            for key in sorted(set(old) | set(new)):
                if old.get(key) != new.get(key):
                    changes[f"{field.name}.{key}"] = CHANGED
        elif field.name in SECRET_FIELD_NAMES:
            changes[field.name] = CHANGED
        else:
            changes[field.name] = {"old": old, "new": new}
    return changes


def _object_fields(obj: Model | type[Model] | None) -> dict[str, str]:
    if obj is None:
        return {}
    fields = {"object_type": obj._meta.label_lower}
    if isinstance(obj, Model):
        fields.update(object_id=str(obj.pk), object_label=_cut(str(obj), 300))
    return fields


def _lock_chain(tenant_id: int | None) -> None:
    """Wait for the chain's other writers (PostgreSQL; SQLite has one writer at a time)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            key = (tenant_id or 0) % 2**31  # an int4; a collision only shares a lock
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, key])


def _client_ip(request: Any) -> str | None:
    """The address django-axes sees (CLIENT_IP_HEADER or REMOTE_ADDR), normalized as
    the database would store it."""
    if request is None:
        return None
    try:
        return str(ipaddress.ip_address(get_client_ip_address(request) or ""))
    except ValueError:
        return None


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """JSON as the database will give it back: plain types, text keys, no NUL
    characters (PostgreSQL refuses them), long texts cut."""
    return _clean_texts(json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


def _clean_texts(value: Any) -> Any:
    if isinstance(value, dict):
        return {_cut(key, 200): _clean_texts(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean_texts(item) for item in value]
    if isinstance(value, str):
        return _cut(value, MAX_TEXT)
    return value


def _cut(text: str, limit: int) -> str:
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - 1] + "…"
