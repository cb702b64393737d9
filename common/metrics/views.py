"""GET /metrics: every process's metrics for Prometheus, behind METRICS_TOKEN when set."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from . import store


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus's exposition format; 401 unless the request carries `Authorization: Bearer
    <METRICS_TOKEN>` (no check when METRICS_TOKEN is empty)."""
    if not authorized(request, settings.METRICS_TOKEN):
        response = HttpResponse("unauthorized", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = store.exposition(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)


def authorized(request: HttpRequest, token: str) -> bool:
    """Whether the request's bearer token is `token`, compared in constant time."""
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
