"""The callback endpoint: verify, parse, store, enqueue, answer. Nothing slow happens here."""

import logging
import time
from uuid import UUID

from django.db import DatabaseError, DataError
from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from common import metrics
from common.api import FirstRenderer
from conversations.models import Message
from conversations.services import receive
from conversations.stops import stop_recalled

from .bot_cache import active_bot
from .models import Bot
from .platforms import PLATFORMS
from .platforms.base import (
    BadPayload,
    CallbackResult,
    Challenge,
    Ignored,
    InboundMessage,
    Recalled,
    SignatureInvalid,
    StaleRequest,
)

logger = logging.getLogger(__name__)


class CallbackView(APIView):
    """A DRF view without DRF's machinery: no authentication, permission, throttle or
    parser classes, since the platform module verifies the signature over the raw body's
    bytes and parses it itself (spec/api.md, "Callbacks are DRF views too")."""

    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()
    parser_classes = ()
    # The platform's Accept header (text/xml …) or a `format` parameter is no reason to
    # answer anything but the ack.
    content_negotiation_class = FirstRenderer
    http_method_names = ["get", "post"]
    schema = None  # not part of the REST API's schema

    def get(self, request: Request, platform: str, public_id: UUID) -> HttpResponse:
        return self.handle(request, platform, public_id)

    def post(self, request: Request, platform: str, public_id: UUID) -> HttpResponse:
        return self.handle(request, platform, public_id)

    def handle(self, request: Request, platform: str, public_id: UUID) -> HttpResponse:
        started = time.perf_counter()
        response, outcome = self.respond(request, platform, public_id)
        label = platform if platform in PLATFORMS else "unknown"  # the URL's: anything
        metrics.CALLBACKS.labels(label, outcome).inc()
        metrics.CALLBACK_SECONDS.labels(label).observe(time.perf_counter() - started)
        return response

    def respond(self, request: Request, platform: str, public_id: UUID) -> tuple[HttpResponse, str]:
        """The response, and the outcome the metrics count it under."""
        raw = request._request  # the Django request: its body bytes are what was signed
        try:
            bot = active_bot(platform, public_id)
            adapter = bot.adapter
            adapter.verify(raw)
            result = adapter.parse(raw)
            if isinstance(result, InboundMessage):
                outcome = intake_outcome(receive(bot, result))
            elif isinstance(result, Recalled):
                # Signalled, never waited for: the worker stops the answer on its own.
                stop_recalled(bot, result.external_id)
                outcome = "recalled"
            else:
                outcome = parsed_outcome(result)
            return adapter.ack(result), outcome
        except Bot.DoesNotExist:
            return HttpResponse("unknown bot", status=404), "unknown_bot"
        except SignatureInvalid as exc:
            logger.warning("callback for bot %s rejected: %s", public_id, exc)
            outcome = "stale" if isinstance(exc, StaleRequest) else "bad_signature"
            return HttpResponse("invalid signature", status=403), outcome
        except BadPayload as exc:
            logger.warning("callback for bot %s unreadable: %s", public_id, exc)
            return HttpResponse("bad request", status=400), "malformed"
        except DataError:
            # A value the database refuses is this request's fault, not an outage: a 5xx
            # would have the platform retry it for hours. InboundMessage checks what it
            # knows of; this is the net under that.
            logger.exception("callback for bot %s carries a value that cannot be stored", public_id)
            return HttpResponse("bad request", status=400), "malformed"
        except DatabaseError:
            return database_unavailable(), "unavailable"


def parsed_outcome(result: CallbackResult) -> str:
    """The outcome of a callback that carries no message."""
    if isinstance(result, Challenge):
        return "challenge"
    if isinstance(result, Ignored):
        return "ignored"
    return "poll"  # a PlatformCallback, answered by its platform module (a stream poll …)


def intake_outcome(message: Message | None) -> str:
    """A message's outcome: accepted (stored, answered next), duplicate or rate_limited."""
    if message is None:
        return "duplicate"
    return "rate_limited" if message.status == Message.Status.RATE_LIMITED else "accepted"


def database_unavailable() -> HttpResponse:
    # The platform retries on 5xx, so nothing is lost while the database is down.
    logger.exception("database unavailable while handling a callback")
    return HttpResponse("temporarily unavailable", status=503)
