"""assistant/settings.py refuses, at start, a numeric variable outside its range."""

import re
import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = Path(__file__).resolve().parents[1] / "assistant" / "settings.py"

# (variable, lowest accepted, highest accepted, a step beyond either end)
RANGES = [
    ("DATABASE_CONN_MAX_AGE", 0, 3600, 1),
    ("CELERY_DB_REUSE_MAX", 0, 100_000, 1),
    ("WORKER_CONCURRENCY", 1, 64, 1),
    ("CELERY_TASK_SOFT_TIME_LIMIT", 1, 7200, 1),
    ("IM_ANSWER_BUDGET_SECONDS", 10, 3600, 1),
    ("IM_SIGN_OF_LIFE_SECONDS", 0, 120, 0.5),
    ("IM_SWEEP_INTERVAL_SECONDS", 5, 3600, 1),
    ("OLLAMA_CONNECT_TIMEOUT", 0.1, 60, 0.05),
    ("OLLAMA_TIMEOUT", 1, 3600, 0.5),
    ("OLLAMA_MAX_RETRIES", 0, 10, 1),
    ("OLLAMA_RETRY_BACKOFF", 0, 60, 0.5),
    ("OLLAMA_NUM_PREDICT", 1, 32_768, 1),
    ("IM_HTTP_TIMEOUT", 0.5, 120, 0.25),
    ("IM_BOT_CACHE_SECONDS", 0, 300, 0.5),
    ("IM_DELIVERY_MAX_RETRIES", 0, 20, 1),
    ("IM_DELIVERY_RETRY_BACKOFF", 0, 60, 0.5),
    ("IM_STUCK_AFTER_SECONDS", 0, 86_400, 1),
    ("IM_CLAIM_SECONDS", 1, 86_400, 1),
    ("IM_MAX_BODY_BYTES", 16 * 1024, 16 * 1024 * 1024, 1),
    ("IM_WORKER_HEARTBEAT_SECONDS", 0.1, 300, 0.05),
    # At least the longest a live answer goes without a token: connect + OLLAMA_TIMEOUT.
    ("IM_ADMISSION_LEASE_SECONDS", 125, 7200, 1),
    ("IM_QUEUE_NOTICE_SECONDS", 0, 300, 0.5),
    ("IM_QUEUE_UPDATE_SECONDS", 1, 300, 0.5),
    ("ADMIN_LOGIN_FAILURE_LIMIT", 1, 100, 1),
    ("API_RATE_LIMIT_PER_MINUTE", 1, 100_000, 1),
    ("API_THREADS", 1, 256, 8),
    ("WEB_THREADS", 1, 256, 8),
    ("ADMIN_LOGIN_COOLOFF_MINUTES", 0.5, 10_080, 0.25),
    ("RETENTION_HOUR", 0, 23, 1),
    ("RETENTION_BATCH_SIZE", 1, 100_000, 1),
]


def load_settings(monkeypatch, **variables: str) -> dict:
    """A fresh run of the settings module with these variables (Django's copy is untouched)."""
    # A PostgreSQL URL, so that DATABASE_CONN_MAX_AGE is read as well.
    monkeypatch.setenv("DATABASE_URL", "postgres://user:pw@db.invalid:5432/db")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


@pytest.mark.parametrize(("name", "low", "high", "step"), RANGES)
def test_it_accepts_a_setting_at_either_end_of_its_range(monkeypatch, name, low, high, step):
    for value in (low, high):
        namespace = load_settings(monkeypatch, **{name: str(value)})
        assert value in _values(namespace), (name, value)


@pytest.mark.parametrize(("name", "low", "high", "step"), RANGES)
def test_it_refuses_a_setting_beyond_its_range(monkeypatch, name, low, high, step):
    for value in (low - step, high + step):
        with pytest.raises(ImproperlyConfigured, match=rf"^{name}=.* out of range: use "):
            load_settings(monkeypatch, **{name: str(value)})


@pytest.mark.parametrize(
    ("variables", "threshold"),
    [
        ({}, 5),
        ({"DATABASE_PREPARED_STATEMENTS": "false"}, None),
        ({"IM_DISPATCH": "publish"}, None),  # the setting for a transaction pooler
        ({"IM_DISPATCH": "publish", "DATABASE_PREPARED_STATEMENTS": "true"}, 5),
    ],
)
def test_prepared_statements_are_off_for_a_transaction_pooler(monkeypatch, variables, threshold):
    namespace = load_settings(monkeypatch, **variables)
    options = namespace["DATABASES"]["default"].get("OPTIONS", {})
    assert options.get("prepare_threshold") == threshold


def test_it_names_a_variable_that_is_not_a_number(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="^OLLAMA_NUM_PREDICT must be a number"):
        load_settings(monkeypatch, OLLAMA_NUM_PREDICT="lots")


def test_it_bounds_every_numeric_variable_it_reads():
    source = SETTINGS.read_text()
    assert "env.int(" not in source and "env.float(" not in source
    assert set(re.findall(r'ranged(?:_float)?\(\s*"(\w+)"', source)) == {n for n, *_ in RANGES}


def _values(namespace: dict) -> list:
    """Every number the settings hold, nested ones (DATABASES, the beat schedule) too."""
    found: list = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif hasattr(value, "total_seconds"):
            found.append(value.total_seconds())
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append(value)

    walk({k: v for k, v in namespace.items() if k.isupper()})
    return found
