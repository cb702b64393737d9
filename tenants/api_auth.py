"""Who calls the REST API, for which tenant, with which scopes: decided once, here.

An authentication class sets `request.tenant` and `request.scopes`; every API view's
queryset starts from `request.tenant`, so nothing in a request can name another tenant
(spec/api.md; STYLE principle 8). A tenant API key (`Authorization: Bearer <key>`) brings
its own scopes; a signed-in user of the admin (the docs page) gets their membership's:
a tenant admin all three, an auditor `logs:read`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from .models import ApiKey, Membership, Tenant

if TYPE_CHECKING:  # DRF imports this module while rest_framework.views is half loaded
    from rest_framework.views import APIView

ROLE_SCOPES = {
    Membership.Role.ADMIN: frozenset(ApiKey.SCOPES),
    Membership.Role.AUDITOR: frozenset({"logs:read"}),
}


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <tenant API key>`; 401 for an unknown or disabled key."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        words = get_authorization_header(request).split()
        if not words or words[0].lower() != b"bearer":
            return None
        if len(words) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header is not 'Bearer <key>'.")
        try:
            raw_key = words[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("The API key is not ASCII.") from exc
        key = ApiKey.for_key(raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or disabled API key.")
        grant(request, key.tenant, frozenset(key.scopes))
        return AnonymousUser(), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class TenantSessionAuthentication(SessionAuthentication):
    """A signed-in admin user, from the docs page. A member of one tenant acts for it; a
    member of several (or the operator) names one in the `X-Tenant` header (its slug)."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        found = super().authenticate(request)
        if found is None:
            return None
        user = found[0]
        memberships = {m.tenant.slug: m for m in user.memberships.select_related("tenant")}
        slug = request.headers.get("X-Tenant") or (
            next(iter(memberships)) if len(memberships) == 1 else ""
        )
        if user.is_superuser:
            tenant = Tenant.objects.filter(slug=slug, is_active=True).first()
            scopes = frozenset(ApiKey.SCOPES)
        elif slug in memberships and memberships[slug].tenant.is_active:
            tenant = memberships[slug].tenant
            scopes = ROLE_SCOPES.get(memberships[slug].role, frozenset())
        else:
            tenant = None
        if tenant is None:
            raise exceptions.AuthenticationFailed("Name one of your tenants in X-Tenant.")
        grant(request, tenant, scopes)
        return user, None


def grant(request: Request, tenant: Tenant, scopes: frozenset[str]) -> None:
    """What the caller may act on: this tenant, with these scopes."""
    request.tenant = tenant  # type: ignore[attr-defined]
    request.scopes = scopes  # type: ignore[attr-defined]


def tenant_of(request: Request) -> Tenant:
    """The tenant the request acts for: every API queryset starts here."""
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        raise exceptions.NotAuthenticated()
    return tenant


class HasScope(BasePermission):
    """The caller holds one of the view's `required_scopes` (any one suffices): a tuple,
    or a dict of them by HTTP method. A view that names none is refused."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if getattr(request, "tenant", None) is None:
            return False
        required = getattr(view, "required_scopes", ())
        if isinstance(required, dict):
            required = required.get(request.method or "", ())
        return bool(set(required) & getattr(request, "scopes", frozenset()))


class KeyRateThrottle(SimpleRateThrottle):
    """API_RATE_LIMIT_PER_MINUTE requests per key (or signed-in user); 429 with
    Retry-After beyond it."""

    scope = "api"

    def get_rate(self) -> str:
        return f"{settings.API_RATE_LIMIT_PER_MINUTE}/min"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if isinstance(request.auth, ApiKey):
            return f"throttle:api:key:{request.auth.pk}"
        if request.user is not None and request.user.is_authenticated:
            return f"throttle:api:user:{request.user.pk}"
        return None
