"""Sign-ins and failed sign-ins in the audit trail (Django's auth signals; django-axes
sends a refused, locked-out sign-in through user_login_failed too).

A user's sign-in goes to the chain of each tenant they belong to, so that each tenant's
admins see who signed in to it; a user of no tenant (the operator), or an unknown name,
goes to the operator's chain.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.http import HttpRequest

from . import audit
from .models import Tenant

Action = audit.Action


def connect() -> None:
    user_logged_in.connect(signed_in, dispatch_uid="audit-sign-in")
    user_login_failed.connect(sign_in_failed, dispatch_uid="audit-sign-in-failed")


def signed_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    for tenant in chains_of(user):
        audit.record(Action.SIGN_IN, tenant=tenant, request=request, actor=audit.Actor.user(user))


def sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    User = get_user_model()
    username = str(credentials.get(User.USERNAME_FIELD) or "")
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
    actor = audit.Actor(label=username or "-", user_id=user.pk if user else None)
    for tenant in chains_of(user):
        audit.record(Action.SIGN_IN_FAILED, tenant=tenant, request=request, actor=actor)


def chains_of(user: Any) -> list[Tenant | None]:
    """The user's tenants, or the operator's chain for a user of none (or no user)."""
    tenants = Tenant.objects.filter(memberships__user=user).order_by("pk") if user else []
    return [*tenants] or [None]
