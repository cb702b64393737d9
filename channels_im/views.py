"""The callback endpoint: verify, parse, store, enqueue, answer. Nothing slow happens here."""

import logging
from uuid import UUID

from django.db import DatabaseError
from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from conversations.services import receive

from .bot_cache import active_bot
from .models import Bot
from .platforms.base import BadPayload, InboundMessage, SignatureInvalid

logger = logging.getLogger(__name__)


class CallbackView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    parser_classes: list = []  # adapters read the raw body: signatures cover its bytes

    def get(self, request: Request, platform: str, public_id: UUID) -> HttpResponse:
        return self.handle(request, platform, public_id)

    def post(self, request: Request, platform: str, public_id: UUID) -> HttpResponse:
        return self.handle(request, platform, public_id)

    def handle(self, request: Request, platform: str, public_id: UUID) -> HttpResponse:
        try:
            bot = active_bot(platform, public_id)
            adapter = bot.adapter
            adapter.verify(request)
            result = adapter.parse(request)
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
        except DatabaseError:
            return database_unavailable()


def database_unavailable() -> HttpResponse:
    # The platform retries on 5xx, so nothing is lost while the database is down.
    logger.exception("database unavailable while handling a callback")
    return HttpResponse("temporarily unavailable", status=503)
