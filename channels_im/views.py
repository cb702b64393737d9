"""The callback endpoint: verify, parse, store, enqueue, answer. Nothing slow happens here."""

import logging
from uuid import UUID

from django.db import DatabaseError, DataError
from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from common.api import FirstRenderer
from conversations.services import receive

from .bot_cache import active_bot
from .models import Bot
from .platforms.base import BadPayload, InboundMessage, SignatureInvalid

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
        raw = request._request  # the Django request: its body bytes are what was signed
        try:
            bot = active_bot(platform, public_id)
            adapter = bot.adapter
            adapter.verify(raw)
            result = adapter.parse(raw)
            if isinstance(result, InboundMessage):
                receive(bot, result)
            return adapter.ack(result)
        except Bot.DoesNotExist:
            return HttpResponse("unknown bot", status=404)
        except SignatureInvalid as exc:
            logger.warning("callback for bot %s rejected: %s", public_id, exc)
            return HttpResponse("invalid signature", status=403)
        except BadPayload as exc:
            logger.warning("callback for bot %s unreadable: %s", public_id, exc)
            return HttpResponse("bad request", status=400)
        except DataError:
            # A value the database refuses is this request's fault, not an outage: a 5xx
            # would have the platform retry it for hours. InboundMessage checks what it
            # knows of; this is the net under that.
            logger.exception("callback for bot %s carries a value that cannot be stored", public_id)
            return HttpResponse("bad request", status=400)
        except DatabaseError:
            return database_unavailable()


def database_unavailable() -> HttpResponse:
    # The platform retries on 5xx, so nothing is lost while the database is down.
    logger.exception("database unavailable while handling a callback")
    return HttpResponse("temporarily unavailable", status=503)
