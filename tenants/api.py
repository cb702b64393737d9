"""`GET|PATCH /api/v1/tenant/` (scope `admin`): the calling tenant's own settings.

The fields are apply_config's tenant table; `slug` and `name` are read-only, and every
value is checked by the model's own validators, as in the admin.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .api_auth import tenant_of
from .config import TENANT_FIELDS
from .models import Tenant


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = [name for name in TENANT_FIELDS if name != "is_active"]
        read_only_fields = ["slug", "name"]

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


class TenantView(APIView):
    required_scopes = ("admin",)

    @extend_schema(responses=TenantSerializer, summary="Read the tenant's settings")
    def get(self, request: Request) -> Response:
        return Response(TenantSerializer(tenant_of(request)).data)

    @extend_schema(
        request=TenantSerializer, responses=TenantSerializer, summary="Change the tenant's settings"
    )
    def patch(self, request: Request) -> Response:
        tenant = Tenant.objects.get(pk=tenant_of(request).pk)
        serializer = TenantSerializer(tenant, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)
