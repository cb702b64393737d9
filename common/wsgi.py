"""Django's WSGI handler without middleware, for requests that need none of it.

A platform's callback is authenticated by its signature and answered with a fixed body;
sessions, CSRF, authentication, messages, locale, the sign-in throttle and static files
are work it never uses, and cost a fifth of the web process's CPU per callback
(cProfile, one process, PostgreSQL). Exceptions still become responses as under the
full handler, and request_started/request_finished still manage the thread's database
connections.
"""

from __future__ import annotations

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler


class BareWSGIHandler(WSGIHandler):
    """A WSGI application: Django's URL conf and views, no middleware (Django's
    BaseHandler.load_middleware with an empty MIDDLEWARE)."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list = []
        self._template_response_middleware: list = []
        self._exception_middleware: list = []
        self._middleware_chain = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]
