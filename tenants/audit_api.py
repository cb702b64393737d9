"""REST API calls in the audit trail, with the API key (or signed-in user) as the actor.

Two view mixins, each the one hook of its kind: `AuditedWrites` for endpoints that
change rows (the tenant's settings, bots), `AuditedReads` for those that read the log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Model, QuerySet
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from . import audit
from .api_auth import tenant_of

Action = audit.Action


class AuditedWrites:
    """For DRF generic views: every create, update and destroy is recorded with its
    changed fields, in the same transaction as the write. A view that overrides a
    `perform_*` method must call super() (or stamp values in its serializer instead)."""

    request: Any

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        with transaction.atomic():
            super().perform_create(serializer)  # type: ignore[misc]
            audit.saved(_row(serializer), None, request=self.request)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        with transaction.atomic():
            # The stored row: validation may have set the new values on the instance.
            before = audit.stored(_row(serializer))
            super().perform_update(serializer)  # type: ignore[misc]
            audit.saved(_row(serializer), before, request=self.request)

    def perform_destroy(self, instance: Model) -> None:
        with transaction.atomic():
            audit.deleting(instance, request=self.request)
            super().perform_destroy(instance)  # type: ignore[misc]


def _row(serializer: BaseSerializer[Any]) -> Model:
    assert serializer.instance is not None, "a saving serializer has its instance"
    return serializer.instance


class AuditedReads:
    """For DRF generic views that read the log: each successful GET is recorded before
    the body goes out, as the view's `audit_action`:

    - VIEW: the object the view fetched with `get_object()`, unless `is_audited(obj)`
      says it is no look at the log;
    - SEARCH: the model and the query parameters (without the page cursor);
    - EXPORT: the same, and the number of rows `get_queryset()` selects.
    """

    audit_action: str
    audited_object: Model | None = None

    def get_object(self) -> Any:
        self.audited_object = super().get_object()  # type: ignore[misc]
        return self.audited_object

    if TYPE_CHECKING:  # GenericAPIView's, or the view's own

        def get_queryset(self) -> QuerySet[Any]: ...

    def is_audited(self, obj: Model) -> bool:
        """Whether reading `obj` is a look at the log (the default: always)."""
        return True

    def finalize_response(
        self, request: Request, response: Any, *args: Any, **kwargs: Any
    ) -> Response:
        if request.method == "GET" and status.is_success(response.status_code):
            self._record_read(request)
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]

    def _record_read(self, request: Request) -> None:
        tenant = tenant_of(request)
        if self.audit_action == Action.VIEW:
            obj = self.audited_object
            if obj is not None and self.is_audited(obj):
                audit.record(Action.VIEW, tenant=tenant, obj=obj, request=request)
            return
        rows = self.get_queryset()
        detail: dict[str, Any] = {
            "query": {key: value for key, value in request.query_params.items() if key != "cursor"}
        }
        if self.audit_action == Action.EXPORT:
            detail["rows"] = rows.count()
        audit.record(
            self.audit_action, tenant=tenant, obj=rows.model, request=request, detail=detail
        )
