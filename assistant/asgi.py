"""The web process's application, served by gunicorn with the ASGI worker of
`common/webserver.py` (gunicorn.conf.py names both).

The REST API goes through Django's ASGI handler: its clients may wait minutes on an answer
or a stream, on the event loop, holding no thread (conversations/api/watch.py). Everything
else (the platforms' callbacks, the admin, health checks, static files) goes through
Django's WSGI handler on a fixed pool of threads (common/asgi.py): one handoff per
request, where the ASGI handler's per-middleware hops cost a callback twice the CPU;
the callbacks through one without middleware (common/wsgi.py).
At most API_THREADS API requests are at work at once (one waiting gives its place back),
so API clients never take the threads and connections callbacks need; no request body
over IM_MAX_BODY_BYTES is read.
"""

import os
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

from common.asgi import BodyLimit, Receive, Send, Slots, WsgiInThreads
from common.wsgi import BareWSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
# Requests' code runs in many threads here: connections come from a pool.
os.environ.setdefault("DATABASE_POOL", "true")
api = Slots(get_asgi_application(), settings.API_THREADS)
everything_else = get_wsgi_application()
callbacks = BareWSGIHandler()


def by_path(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The platforms' callbacks skip Django's middleware (common/wsgi.py)."""
    if environ["PATH_INFO"].startswith("/callbacks/"):
        return callbacks(environ, start_response)
    return everything_else(environ, start_response)


rest = WsgiInThreads(by_path, settings.WEB_THREADS)


async def route(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["path"].startswith("/api/"):
        await api(scope, receive, send)
    else:
        await rest(scope, receive, send)


application = BodyLimit(route, settings.IM_MAX_BODY_BYTES)
