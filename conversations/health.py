"""Liveness and readiness probes for load balancers, orchestrators and monitoring.

`/readyz` answers 503 only when this web process cannot take callbacks: the database, the
broker or the cache is down. A missing worker or an unreachable model is reported in its own
field but keeps 200: a callback is still stored and answered later, whereas a load balancer
that took every web process out would turn a delayed answer into refused callbacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

from assistant.celery import app

from . import heartbeat, llm

logger = logging.getLogger(__name__)

# A probe polled every few seconds must not wait on a model busy answering.
MODEL_PROBE_SECONDS = 2.0
MODEL_PROBE_CACHE = 10


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up; says nothing about its dependencies."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Every check by name, true or false. 503 "unavailable" when one the web needs fails;
    200 "degraded" when only the worker or the default model is missing; else 200 "ok"."""
    needed = {"database": _database, "broker": _broker, "cache": _cache}
    reported = {"worker": _worker, "model": _model}
    checks = {name: _run(name, check) for name, check in {**needed, **reported}.items()}
    if not all(checks[name] for name in needed):
        status, code = "unavailable", 503
    else:
        status, code = ("ok" if all(checks.values()) else "degraded"), 200
    return JsonResponse({"status": status, "checks": checks}, status=code)


def _run(name: str, check: Callable[[], None]) -> bool:
    try:
        check()
    except Exception as exc:
        # Polled every few seconds: one line per failure, not a traceback.
        logger.warning("readiness check %s failed: %r", name, exc)
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


def _worker() -> None:
    missing = heartbeat.unconsumed(sorted(app.amqp.queues))
    if missing:
        raise RuntimeError(f"no live worker consumes {', '.join(missing)}")


def _model() -> None:
    """The default model endpoint answers; its verdict is kept for MODEL_PROBE_CACHE
    seconds, so an orchestrator polling /readyz does not make every poll call out (or
    hold a web thread for a model that does not answer)."""
    key = f"im:readyz:model:{settings.OLLAMA_URL}"
    verdict = cache.get(key)
    if verdict is None:
        try:
            llm.probe(settings.OLLAMA_URL, MODEL_PROBE_SECONDS)
            verdict = ""
        except Exception as exc:  # noqa: BLE001 - whatever stops the probe is its verdict
            verdict = f"{type(exc).__name__}: {exc}"
        cache.set(key, verdict, MODEL_PROBE_CACHE)
    if verdict:
        raise RuntimeError(verdict)
