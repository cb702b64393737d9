"""Sending a message and reading its answer: `POST /api/v1/messages/`, `GET …/{id}/`,
`GET …/{id}/stream/` (spec/api.md, "Sending a message").

An API message travels the chat path: `services.receive` on the tenant's bot of platform
`api` stores it, applies the limits and enqueues it; a worker answers it. Waiting and
streaming read the row (and, while the model writes, the text so far in the cache).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from channels_im.models import Bot
from channels_im.platforms.api.adapter import live_key
from channels_im.platforms.base import BadPayload, InboundMessage
from common.api import FirstRenderer
from tenants.api_auth import tenant_of
from tenants.audit_api import AuditedReads
from tenants.audit_models import AuditEvent

from .. import services
from ..models import Message
from .logs import MessageList, questions
from .serializers import FINAL, MessageSerializer, SendSerializer

# How often a waiting request or a stream looks at the row again.
POLL_SECONDS = 0.1
# A stream closes after this long even if the answer never finished (the worker's own
# budget ends sooner).
STREAM_LIMIT_SECONDS = 900


def readable(request: Request) -> QuerySet[Message]:
    """The questions this caller may read: all of the tenant's with `logs:read`, else
    (`chat`) only those sent through the API."""
    rows = questions(request)
    if "logs:read" in getattr(request, "scopes", frozenset()):
        return rows
    return rows.filter(bot__platform="api")


def api_bot(request: Request) -> Bot:
    """The tenant's bot of platform `api`, created on first use (the bots endpoint does
    not make them, so there is one)."""
    tenant = tenant_of(request)
    bot = Bot.objects.filter(tenant=tenant, platform="api").order_by("pk").first()
    return bot or Bot.objects.create(tenant=tenant, platform="api", name="REST API")


class MessagesView(MessageList):
    """`POST`: send a message; 202 while unanswered, 200 once answered. `GET`: the log's
    messages (MessageList)."""

    required_scopes = {"GET": ("logs:read",), "POST": ("chat",)}

    @extend_schema(
        request=SendSerializer,
        responses={200: MessageSerializer, 202: MessageSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
        summary="Send a message (and wait for its answer)",
    )
    def post(self, request: Request) -> Response:
        sent = SendSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        data = sent.validated_data
        idempotency = data.get("idempotency_key") or request.headers.get("Idempotency-Key")
        bot = api_bot(request)
        external_id = f"key:{idempotency}" if idempotency else f"api:{uuid.uuid4().hex}"
        try:
            inbound = InboundMessage(
                external_id=external_id,
                sender=data["user"],
                chat=data.get("conversation") or data["user"],
                text=data["text"],
            )
        except BadPayload as exc:  # an identifier no column can hold: name the field
            field = {"external_id": "idempotency_key", "sender": "user", "chat": "conversation"}
            name = next((f for key, f in field.items() if str(exc).startswith(key)), "detail")
            raise ValidationError({name: [str(exc).replace(str(exc).split()[0], name, 1)]}) from exc
        services.receive(bot, inbound)
        question = questions(request).get(bot=bot, external_id=external_id)
        question = wait_for_answer(question, data["wait"])
        done = question.status in FINAL
        body = MessageSerializer(question).data
        return Response(body, status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED)


class MessageRead(AuditedReads, GenericAPIView):
    """Reading one message: a look at the log, unless the message was sent through the
    API (a client polling its own answer)."""

    audit_action = AuditEvent.Action.VIEW
    serializer_class = MessageSerializer

    def get_queryset(self) -> QuerySet[Message]:
        return readable(self.request)

    def is_audited(self, obj: Message) -> bool:  # type: ignore[override]
        return obj.bot.platform != "api"


class MessageView(MessageRead):
    """`GET`: one message object."""

    required_scopes = ("chat", "logs:read")

    @extend_schema(responses=MessageSerializer, summary="Read a message and its answer")
    def get(self, request: Request, pk: int) -> Response:
        return Response(MessageSerializer(self.get_object()).data)


class MessageStreamView(MessageRead):
    """`GET`: the answer as server-sent events: `delta`s, then `done` or `error`."""

    required_scopes = ("chat",)
    # An EventSource sends `Accept: text/event-stream`; errors still answer in JSON.
    content_negotiation_class = FirstRenderer

    @extend_schema(
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description='event: delta / data: {"text": …} …, then done or error',
            )
        },
        summary="Stream the answer as server-sent events",
    )
    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        question = self.get_object()
        response = StreamingHttpResponse(events(question), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # a buffering proxy would hold the deltas
        return response


_holding = 0
_holding_lock = threading.Lock()


@contextmanager
def holding_a_thread() -> Iterator[bool]:
    """Whether this request may keep its web thread to wait or stream: at most
    API_WAITING_PER_PROCESS requests of a process at once, so that waiting clients never
    hold every thread the platforms' callbacks need. (Interim: a serving model that gives
    a waiting client no thread is issue 11's open item.)"""
    global _holding
    with _holding_lock:
        allowed = _holding < settings.API_WAITING_PER_PROCESS
        _holding += allowed
    try:
        yield allowed
    finally:
        with _holding_lock:
            _holding -= allowed


def wait_for_answer(question: Message, seconds: float) -> Message:
    """The question as it stands once answered, or after `seconds`; at once (a 202 the
    client polls) when too many requests of this process wait already."""
    deadline = time.monotonic() + seconds
    with holding_a_thread() as allowed:
        while allowed and question.status not in FINAL and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            question = reread(question)
    return question


def events(question: Message) -> Iterator[str]:
    """delta events (first all text so far, then what is new), then `done` with the
    message object, or `error` for a question that failed (its apology is no answer),
    or `error` "busy" when too many requests of this process wait already."""
    with holding_a_thread() as allowed:
        yield from _events(question, allowed)


def _events(question: Message, allowed: bool) -> Iterator[str]:
    shown = ""
    deadline = time.monotonic() + STREAM_LIMIT_SECONDS
    while True:
        final = question.status in FINAL
        failed = question.status == Message.Status.FAILED
        reply = getattr(question, "reply", None)
        if final:
            text = reply.content if reply is not None and not failed else shown
        else:
            text = cache.get(live_key(f"q{question.pk}")) or ""
        if text.startswith(shown) and len(text) > len(shown):
            yield event("delta", {"text": text[len(shown) :]})
            shown = text
        if final and not failed:
            yield event("done", MessageSerializer(question).data)
            return
        if final:
            yield event("error", {"detail": question.error, "code": question.status})
            return
        if not allowed:
            busy = "Too many streams at once: read the message, or stream it again later."
            yield event("error", {"detail": busy, "code": "busy"})
            return
        if time.monotonic() > deadline:
            yield event("error", {"detail": "no answer in time", "code": "timeout"})
            return
        time.sleep(POLL_SECONDS)
        question = reread(question)


def reread(question: Message) -> Message:
    """The question as it stands now, with what its message object shows."""
    return Message.objects.select_related("bot", "reply").get(pk=question.pk)


def event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
