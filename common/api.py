"""What every REST API view shares (spec/api.md): the error body, and cursor pagination.

Errors are JSON `{"detail", "code"}`, with `"errors": {field: [message, …]}` on a 400;
a database that cannot be reached is a 503, and no input is a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, DataError, IntegrityError, connections
from django.http import Http404, HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    permission_classes,
    throttle_classes,
)
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


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

    def decode_cursor(self, request: Request) -> Any:
        """DRF's, with a forged cursor (a position that is no id) a 404 too, not a 500."""
        cursor = super().decode_cursor(request)
        if (
            cursor is not None
            and cursor.position is not None
            and not str(cursor.position).isdecimal()
        ):
            raise exceptions.NotFound(self.invalid_cursor_message)
        return cursor

    def get_page_size(self, request: Request) -> int:
        """The asked page size; a 400 for one that is not a whole number from 1 to 200
        (DRF would quietly use the default)."""
        given = request.query_params.getlist(self.page_size_query_param)
        if not given:
            return self.page_size
        if len(given) > 1 or not given[0].isdecimal() or not 1 <= int(given[0]) <= 200:
            raise exceptions.ValidationError(
                {self.page_size_query_param: ["A whole number from 1 to 200."]}
            )
        return int(given[0])


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {
            "type": "string",
            "example": "This API key lacks the scope this endpoint needs.",
        },
        "code": {"type": "string", "example": "permission_denied"},
        "errors": {
            "type": "object",
            "description": "With a 400: the messages for each bad field.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["detail", "code"],
}
ERRORS = {
    "400": "Invalid body or query: `errors` names each bad field.",
    "401": "No key, or an unknown or disabled one.",
    "403": "The key lacks this endpoint's scope.",
    "404": "No such object in this tenant.",
    "429": "Over the key's request rate: see Retry-After.",
    "503": "The database is unavailable; try again later.",
}


def document_errors(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation that needs a key documents
    the errors it may answer, in the one error body."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not operation.get("security"):
                continue  # open to read: the schema and its docs page
            responses = operation.setdefault("responses", {})
            for status_code, text in ERRORS.items():
                responses.setdefault(status_code, {"description": text, "content": reference})
    return result


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE"])
@authentication_classes([])
@permission_classes([])
@throttle_classes([])
def not_found(request: Request) -> Response:
    """Any other path under the API: a 404 in the API's error shape."""
    raise exceptions.NotFound()


class FirstRenderer(BaseContentNegotiation):
    """Whatever the client's Accept header or `?format=` says, the view's first renderer:
    for views whose answer has one form (a platform's callback, an event stream), which a
    browser's or a platform's Accept header must not turn into a 406."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> Any:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))
        return first, first.media_type


def release_connections() -> None:
    """Hand this thread's database connections back (to the web process's pool) ahead of
    a wait: a waiting client holds no connection either. A connection inside a
    transaction (an atomic block's, or a test's) stays."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def in_a_thread(function: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """`function` for the event loop: it runs in a thread (the request's own, within a
    request), which then releases its connections."""

    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return function(*args, **kwargs)
        finally:
            release_connections()

    return sync_to_async(call)


def awaiting(view: Callable[..., HttpResponseBase]) -> Callable[..., Awaitable[HttpResponseBase]]:
    """A DRF view (`as_view()`) for clients that wait, served on the event loop: the view's
    own code runs in a thread as ever; then a response that carries `awaits`, an async
    callable taking the response, is finished by it on the loop before it is rendered,
    and a streamed response's async content runs on the loop. What they wait for holds
    neither a thread nor a database connection (ASGI, `common/webserver.py`). The schema
    and the URL-conf tests see the view's class as on any DRF view."""
    run = in_a_thread(view)

    async def on_the_loop(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = await run(request, *args, **kwargs)
        finish = getattr(response, "awaits", None)
        if finish is not None:
            await finish(response)
        return response

    on_the_loop.cls = view.cls  # type: ignore[attr-defined]
    on_the_loop.initkwargs = view.initkwargs  # type: ignore[attr-defined]
    return csrf_exempt(on_the_loop)
