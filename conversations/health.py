"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

from assistant.celery import app

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up; says nothing about its dependencies."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Database, broker and cache all answer: 200, else 503 naming what is down."""
    checks = {"database": _database, "broker": _broker, "cache": _cache}
    results = {name: _run(check) for name, check in checks.items()}
    ready = all(results.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": results},
        status=200 if ready else 503,
    )


def _run(check) -> bool:  # noqa: ANN001 - a zero-argument callable
    try:
        check()
    except Exception:
        logger.exception("readiness check %s failed", check.__name__)
        return False
    return True


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _cache() -> None:
    cache.set("readyz", "1", 10)
    if cache.get("readyz") != "1":
        raise RuntimeError("cache did not return what was stored")
