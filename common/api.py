"""What every REST API view shares (spec/api.md): the error body, and cursor pagination.

Errors are JSON `{"detail", "code"}`, with `"errors": {field: [message, …]}` on a 400;
a database that cannot be reached is a 503, and no input is a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, DataError, IntegrityError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with every error in the one body shape."""
    if isinstance(exc, DataError | IntegrityError):
        # A value the database refuses is the request's fault (serializers check first).
        exc = exceptions.ValidationError({"detail": ["This value cannot be stored."]})
    elif isinstance(exc, DatabaseError):
        logger.exception("database unavailable during an API request")
        return Response(
            {"detail": "The database is unavailable; try again later.", "code": "unavailable"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "detail": "Invalid input.",
            "code": "invalid",
            "errors": _field_errors(response.data),
        }
    else:
        response.data = {"detail": str(exc.detail), "code": exc.get_codes()}
    return response


def _field_errors(data: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors as {"field" or "field.sub": [messages]}."""
    if isinstance(data, dict):
        errors: dict[str, list[str]] = {}
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            errors.update(_field_errors(value, name))
        return errors
    if isinstance(data, list) and all(not isinstance(item, dict | list) for item in data):
        return {prefix or "detail": [str(item) for item in data]}
    if isinstance(data, list):
        errors = {}
        for index, item in enumerate(data):
            errors.update(_field_errors(item, f"{prefix}[{index}]"))
        return errors
    return {prefix or "detail": [str(data)]}


class NewestFirst(CursorPagination):
    """Cursor pages, newest first: no COUNT and no OFFSET, whatever the log's size."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
