"""`GET|PATCH /api/v1/tenant/` (scope `admin`): the calling tenant's own settings.

The fields are apply_config's tenant table; `slug` and `name` are read-only, and every
value is checked by the model's own validators, as in the admin. `legal_hold` is shown
but is the operator's: a PATCH that would change it is refused (400, naming it), so a
client never believes it lifted a hold that still stands.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers

from .api_auth import tenant_of
from .audit_api import AuditedWrites
from .config import TENANT_FIELDS
from .models import Tenant


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = [name for name in TENANT_FIELDS if name != "is_active"]
        read_only_fields = ["slug", "name"]

    def validate_legal_hold(self, value: bool) -> bool:
        assert self.instance is not None, "the API only changes an existing tenant"
        if value != self.instance.legal_hold:
            raise serializers.ValidationError(
                _("Only the platform operator can set or lift a legal hold.")
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The model's own checks (allowed hosts, ranges, keep_alive …) on the result."""
        tenant = self.instance
        assert tenant is not None, "the API only changes an existing tenant"
        for name, value in attrs.items():
            setattr(tenant, name, value)
        try:
            tenant.full_clean(exclude=["slug"])
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return attrs


@extend_schema_view(
    get=extend_schema(summary="Read the tenant's settings"),
    patch=extend_schema(summary="Change the tenant's settings"),
)
class TenantView(AuditedWrites, generics.RetrieveUpdateAPIView):
    required_scopes = ("admin",)
    serializer_class = TenantSerializer
    http_method_names = ["get", "patch"]

    def get_object(self) -> Tenant:
        # A fresh row: the serializer's validation sets values on it.
        return Tenant.objects.get(pk=tenant_of(self.request).pk)
