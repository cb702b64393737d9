"""The callback endpoint: verify, parse, store, enqueue, answer. Nothing slow happens here."""

import logging
from uuid import UUID

from django.db import DatabaseError, DataError
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from conversations.services import receive

from .bot_cache import active_bot
from .models import Bot
from .platforms.base import BadPayload, InboundMessage, SignatureInvalid

logger = logging.getLogger(__name__)


@method_decorator(csrf_exempt, name="dispatch")  # platforms sign their requests instead
class CallbackView(View):
    """A plain Django view: adapters read the raw body (signatures cover its bytes), and a
    platform needs none of DRF's negotiation, authentication or parsing."""

    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest, platform: str, public_id: UUID) -> HttpResponse:
        return self.handle(request, platform, public_id)

    def post(self, request: HttpRequest, platform: str, public_id: UUID) -> HttpResponse:
        return self.handle(request, platform, public_id)

    def handle(self, request: HttpRequest, platform: str, public_id: UUID) -> HttpResponse:
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
