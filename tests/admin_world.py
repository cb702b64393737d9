"""The admin matrix's world: two tenants, each row marked with its tenant, and one user per role.

Every row made for tenant A carries the word "alphamark" where it shows text, every row of
tenant B "betamark", so "nothing of the other tenant appears" is a search of the page for
one word. A model registered in the admin later needs nothing here: `make_row` fills its
required fields, and links it to the tenant's rows.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.utils import timezone

from tenants.admin import TenantScopedAdmin
from tenants.models import Membership, Tenant
from tests.factories import (
    ApiKeyFactory,
    BotFactory,
    ConversationFactory,
    MembershipFactory,
    MessageFactory,
    TenantFactory,
    UserFactory,
)

User = get_user_model()

MARKERS = {"a": "alphamark", "b": "betamark"}
SIDES = tuple(MARKERS)

# What each role may do with each tenant's rows; the last two cannot sign in at all.
ACCESS: dict[str, dict[str, str]] = {
    "operator": {"a": "change", "b": "change"},
    "tenant_admin": {"a": "change"},
    "auditor": {"a": "view"},
    "outsider": {"b": "change"},  # a member of the other tenant only
    "no_membership": {},
    "inactive": {},
}
ROLES = tuple(ACCESS)
SIGNED_OUT = ("no_membership", "inactive")


def hidden_sides(role: str) -> list[str]:
    """The tenants whose rows `role` must never see."""
    return [side for side in SIDES if role != "operator" and side not in ACCESS[role]]


@dataclass
class World:
    tenants: dict[str, Tenant] = field(default_factory=dict)
    users: dict[str, Any] = field(default_factory=dict)  # by role
    rows: dict[str, list[models.Model]] = field(default_factory=dict)  # by side: all made
    targets: dict[tuple[type[models.Model], str], models.Model] = field(default_factory=dict)

    def target(self, model: type[models.Model], side: str) -> models.Model:
        """The row of `side` that the pages of `model` act on."""
        return self.targets[model, side]

    def hidden_rows(self, role: str) -> set[tuple[str, Any]]:
        """(model label, pk) of every row the role must never be offered."""
        return {(row._meta.label, row.pk) for side in hidden_sides(role) for row in self.rows[side]}

    def add(self, side: str, *rows: models.Model) -> None:
        self.rows.setdefault(side, []).extend(rows)


def member(world: World, side: str, name: str, role: str, **user: Any) -> Membership:
    marker = MARKERS[side]
    account = UserFactory(username=f"{marker}-{name}", password=None, **user)
    membership = MembershipFactory(user=account, tenant=world.tenants[side], role=role)
    world.add(side, account, membership)
    return membership


def build_side(world: World, side: str) -> None:
    marker = MARKERS[side]
    tenant = world.tenants[side] = TenantFactory(slug=marker, name=f"{marker} Co")
    member(world, side, "admin", Membership.Role.ADMIN)
    member(world, side, "auditor", Membership.Role.AUDITOR)
    victim = member(world, side, "member", Membership.Role.AUDITOR)
    bot = BotFactory(tenant=tenant, name=f"{marker}-bot")
    key = ApiKeyFactory(tenant=tenant, name=f"{marker}-key")
    conversation = ConversationFactory(bot=bot, chat_id=f"{marker}-chat", user_id=f"{marker}-u")
    question = MessageFactory(
        conversation=conversation, content=f"{marker}-question", sender=f"{marker}-u"
    )
    answer = MessageFactory(
        conversation=conversation, reply_to=question, role="assistant", content=f"{marker}-answer"
    )
    world.add(side, tenant, bot, key, conversation, question, answer)
    for row in (tenant, victim, victim.user, bot, key, conversation, question):
        world.targets[type(row), side] = row


def build_world() -> World:
    """Both tenants, one user per role, and a target row of each side for every model
    registered in the admin."""
    world = World()
    for side in SIDES:
        build_side(world, side)
    users = world.users
    users["operator"] = UserFactory(username="operator", password=None, is_superuser=True)
    users["tenant_admin"] = User.objects.get(username="alphamark-admin")
    users["auditor"] = User.objects.get(username="alphamark-auditor")
    users["outsider"] = User.objects.get(username="betamark-admin")
    # Staff status, the old key to the admin, opens nothing by itself now.
    users["no_membership"] = UserFactory(username="stranger", password=None, is_staff=True)
    users["inactive"] = member(world, "a", "retired", "admin", is_active=False).user
    for model in admin.site._registry:
        for side in SIDES:
            if (model, side) not in world.targets:
                world.targets[model, side] = make_row(world, model, side)
    return world


def make_row(world: World, model: type[models.Model], side: str) -> models.Model:
    """A row of `model` for `side`: text fields carry the marker, relations point at the
    side's rows. Raises LookupError for a field it cannot fill."""
    values = {}
    # The admin's path to the tenant may end in a plain column ("tenant_id").
    tenant_column = getattr(admin.site._registry.get(model), "tenant_field", None)
    for db_field in model._meta.concrete_fields:
        if db_field.primary_key or getattr(db_field, "auto_now_add", False):
            continue
        if db_field.name == tenant_column and not db_field.is_relation:
            values[db_field.name] = world.tenants[side].pk
        elif db_field.is_relation:
            values[db_field.name] = related_row(world, db_field, side)
        elif db_field.choices:
            values[db_field.name] = db_field.choices[0][0]
        elif isinstance(db_field, models.CharField | models.TextField):
            values[db_field.name] = f"{MARKERS[side]}-{db_field.name}"[: db_field.max_length]
        elif not (db_field.has_default() or db_field.null):
            values[db_field.name] = plain_value(model, db_field)
    row = model._default_manager.create(**values)
    world.add(side, row)
    return row


def related_row(world: World, db_field: models.Field, side: str) -> models.Model | None:
    related = db_field.related_model
    if related is Tenant:
        return world.tenants[side]
    if (related, side) in world.targets:
        return world.targets[related, side]
    if db_field.null:
        return None
    return make_row(world, related, side)


def plain_value(model: type[models.Model], db_field: models.Field) -> Any:
    values = {
        models.GenericIPAddressField: "192.0.2.1",
        models.EmailField: "matrix@example.com",
        models.BooleanField: False,
        models.IntegerField: 1,
        models.FloatField: 1.0,
        models.DecimalField: 1,
        models.DateTimeField: timezone.now(),
        models.DateField: datetime.date.today(),
        models.DurationField: datetime.timedelta(0),
        models.UUIDField: uuid.uuid4(),
        models.JSONField: {},
        models.BinaryField: b"",
    }
    for kind, value in values.items():
        if isinstance(db_field, kind):
            return value
    raise LookupError(
        f"The admin matrix cannot fill {model.__name__}.{db_field.name} "
        f"({type(db_field).__name__}): teach tests/admin_world.py's plain_value."
    )


def is_scoped(model_admin: admin.ModelAdmin) -> bool:
    return isinstance(model_admin, TenantScopedAdmin)
