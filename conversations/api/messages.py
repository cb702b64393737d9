"""Sending a message and reading its answer: `POST /api/v1/messages/`, `GET …/{id}/`,
`GET …/{id}/stream/` (spec/api.md, "Sending a message").

An API message travels the chat path: `services.receive` on the tenant's bot of platform
`api` stores it, applies the limits and enqueues it; a worker answers it. Waiting and
streaming happen on the web process's event loop, holding no thread (`watch.py`): the
sync view does the rest, and a response carries what is left to wait for as `awaits`
(`common.api.awaiting`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from itertools import chain, count

from django.db import IntegrityError, transaction
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
from channels_im.platforms.base import BadPayload, InboundMessage
from common.api import FirstRenderer, in_a_thread
from tenants.api_auth import tenant_of
from tenants.audit_api import AuditedReads
from tenants.audit_models import AuditEvent

from .. import services
from ..models import Message
from . import watch
from .logs import MessageList, questions
from .serializers import FINAL, MessageSerializer, SendSerializer

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
    not make them), under a name no bot of the tenant has yet; requests racing to create
    it all get the one that won."""
    tenant = tenant_of(request)
    bot = Bot.objects.filter(tenant=tenant, platform="api").first()
    if bot is not None:
        return bot
    taken = set(Bot.objects.filter(tenant=tenant).values_list("name", flat=True))
    names = chain(["REST API"], (f"REST API {i}" for i in count(2)))
    name = next(n for n in names if n not in taken)
    try:
        with transaction.atomic():
            return Bot.objects.create(tenant=tenant, platform="api", name=name)
    except IntegrityError:
        return Bot.objects.get(tenant=tenant, platform="api")


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
        response = Response(*shown(question.pk))
        if data["wait"] and response.status_code == status.HTTP_202_ACCEPTED:
            response.awaits = partial(settle, question.pk, data["wait"])  # type: ignore[attr-defined]
        return response


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


def shown(pk: int) -> tuple[dict[str, object], int]:
    """The message object of question `pk` as it stands, and the status code that says
    whether it is answered: 200, or 202 while it is not."""
    question = reread(pk)
    done = question.status in FINAL
    code = status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED
    return MessageSerializer(question).data, code


async def settle(pk: int, seconds: float, response: Response) -> None:
    """Wait on the event loop (no thread held) until question `pk` is answered or
    `seconds` pass, then make `response` show the question as it stands."""
    deadline = time.monotonic() + seconds
    async with watch.changes(pk) as seen:
        try:
            while not (await seen.next_before(deadline)).final:
                pass
        except TimeoutError:
            pass
    response.data, response.status_code = await in_a_thread(shown)(pk)


async def events(question: Message) -> AsyncIterator[str]:
    """delta events (first all text so far, then what is new), then `done` with the
    message object, or `error` for a question that failed (its apology is no answer) or
    that no answer finished within STREAM_LIMIT_SECONDS. Runs on the event loop."""
    text = ""
    if question.status not in FINAL:
        deadline = time.monotonic() + STREAM_LIMIT_SECONDS
        async with watch.changes(question.pk) as seen:
            try:
                while not (now := await seen.next_before(deadline)).final:
                    if now.text.startswith(text) and len(now.text) > len(text):
                        yield event("delta", {"text": now.text[len(text) :]})
                        text = now.text
            except TimeoutError:
                yield event("error", {"detail": "no answer in time", "code": "timeout"})
                return
        question = await in_a_thread(reread)(question.pk)
    if question.status == Message.Status.FAILED:
        yield event("error", {"detail": question.error, "code": question.status})
        return
    reply = getattr(question, "reply", None)  # none for a question dropped unanswered
    answer = reply.content if reply is not None else text
    if answer.startswith(text) and len(answer) > len(text):
        yield event("delta", {"text": answer[len(text) :]})
    yield event("done", await in_a_thread(lambda: MessageSerializer(question).data)())


def reread(pk: int) -> Message:
    """Question `pk` as it stands now, with what its message object shows."""
    return Message.objects.select_related("bot", "reply").get(pk=pk)


def event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
