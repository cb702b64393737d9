"""Reading the log (scope `logs:read`, spec/api.md "Reading the log"): conversations,
messages and their export, newest first, filtered, cursor-paginated."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

from common.api import NewestFirst
from tenants.api_auth import tenant_of
from tenants.audit_api import AuditedReads
from tenants.audit_models import AuditEvent

from ..export import FORMATS, download
from ..log_filters import narrow
from ..models import Conversation, Message
from .serializers import (
    ConversationDetailSerializer,
    ConversationSerializer,
    MessageSerializer,
    TranscriptRowSerializer,
)


def questions(request: Request) -> QuerySet[Message]:
    """The tenant's questions, with what a message object shows."""
    return Message.objects.filter(tenant=tenant_of(request), role=Message.Role.USER).select_related(
        "bot", "reply"
    )


class Filters(serializers.Serializer):
    """The query parameters the log's lists take; a bad one is a 400 naming it."""

    bot = serializers.UUIDField(required=False)
    platform = serializers.CharField(required=False, max_length=32)
    user = serializers.CharField(required=False, max_length=200)
    chat = serializers.CharField(required=False, max_length=200)
    status = serializers.ChoiceField(required=False, choices=Message.Status.choices)
    role = serializers.ChoiceField(required=False, choices=Message.Role.choices)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    q = serializers.CharField(required=False, max_length=200)


def filters(request: Request, *names: str) -> dict:
    """The validated query parameters among `names`."""
    given = {name: request.query_params[name] for name in names if name in request.query_params}
    checked = Filters(data=given, partial=True)
    checked.is_valid(raise_exception=True)
    return checked.validated_data


FILTER_PARAMETERS = [
    OpenApiParameter(name, type_, description=text)  # type: ignore[arg-type]
    for name, type_, text in [
        ("bot", OpenApiTypes.UUID, "a bot's public_id"),
        ("platform", str, "wecom, wecom_bot, dingtalk, feishu or api"),
        ("user", str, "the platform's user id (the API's `user`)"),
        ("chat", str, "the chat or group id"),
        ("since", OpenApiTypes.DATETIME, "from this time (ISO 8601)"),
        ("until", OpenApiTypes.DATETIME, "before this time (ISO 8601)"),
    ]
]


@extend_schema_view(get=extend_schema(parameters=FILTER_PARAMETERS, summary="List conversations"))
class ConversationList(AuditedReads, generics.ListAPIView):
    """`GET /api/v1/conversations/`: sessions, newest activity first."""

    required_scopes = ("logs:read",)
    audit_action = AuditEvent.Action.SEARCH
    serializer_class = ConversationSerializer
    pagination_class = NewestFirst

    def get_queryset(self) -> QuerySet[Conversation]:
        given = filters(self.request, "bot", "platform", "user", "chat", "since", "until")
        rows = Conversation.objects.filter(tenant=tenant_of(self.request)).select_related("bot")
        return narrow(rows, given).annotate(message_count=Count("messages"))


class ConversationDetail(AuditedReads, generics.RetrieveAPIView):
    """`GET /api/v1/conversations/{id}/`: one session with its transcript."""

    required_scopes = ("logs:read",)
    audit_action = AuditEvent.Action.VIEW
    serializer_class = ConversationDetailSerializer

    def get_queryset(self) -> QuerySet[Conversation]:
        return (
            Conversation.objects.filter(tenant=tenant_of(self.request))
            .select_related("bot")
            .annotate(message_count=Count("messages"))
        )


MESSAGE_PARAMETERS = [
    *FILTER_PARAMETERS,
    OpenApiParameter("status", str, enum=Message.Status.values),
    OpenApiParameter("role", str, enum=Message.Role.values),
    OpenApiParameter("q", str, description="a substring of the text, any case"),
]


def logged_messages(request: Request) -> QuerySet[Message]:
    """The tenant's log rows that the request's filters select."""
    given = filters(request, *Filters().fields)
    rows = Message.objects.filter(tenant=tenant_of(request)).select_related("bot", "reply")
    return narrow(rows, given)


@extend_schema_view(
    get=extend_schema(parameters=MESSAGE_PARAMETERS, summary="List messages of the log")
)
class MessageList(AuditedReads, generics.ListAPIView):
    """`GET /api/v1/messages/`: questions as message objects, answers as transcript rows."""

    required_scopes: Any = ("logs:read",)
    audit_action = AuditEvent.Action.SEARCH
    pagination_class = NewestFirst
    serializer_class = MessageSerializer

    def get_queryset(self) -> QuerySet[Message]:
        return logged_messages(self.request)

    def list(self, request: Request, *args: object, **kwargs: object):  # noqa: ANN201
        page = self.paginate_queryset(self.get_queryset())
        rows = [
            MessageSerializer(row).data
            if row.role == Message.Role.USER
            else TranscriptRowSerializer(row).data
            for row in page or []
        ]
        return self.get_paginated_response(rows)


class _FileRenderer(BaseRenderer):
    """Names a file format for DRF's `?format=` negotiation; the view streams the file."""

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> Any:
        return data


class CsvRenderer(_FileRenderer):
    media_type, format = "text/csv", "csv"


class JsonLinesRenderer(_FileRenderer):
    media_type, format = "application/jsonl", "jsonl"


class MessageExport(AuditedReads, generics.GenericAPIView):
    """`GET /api/v1/messages/export/?format=csv|jsonl`: the filtered log, streamed."""

    required_scopes = ("logs:read",)
    audit_action = AuditEvent.Action.EXPORT
    # The file formats, and JSON for errors.
    renderer_classes = (CsvRenderer, JsonLinesRenderer, JSONRenderer)

    def handle_exception(self, exc: Exception) -> Any:
        """Errors in JSON, whatever file format was asked for."""
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)

    @extend_schema(
        parameters=[
            *MESSAGE_PARAMETERS,
            OpenApiParameter("format", str, enum=["csv", "jsonl"], default="csv"),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
            (200, "application/jsonl"): OpenApiResponse(OpenApiTypes.STR),
        },
        summary="Export the filtered log (CSV with a BOM, or JSON Lines), streamed",
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        kind = request.query_params.get("format", "csv")
        if kind not in FORMATS:  # DRF answered 404 to a format it has no renderer for
            raise serializers.ValidationError({"format": ["Choose csv or jsonl."]})
        return download(self.get_queryset().order_by("-id"), kind)

    def get_queryset(self) -> QuerySet[Message]:
        return logged_messages(self.request)
