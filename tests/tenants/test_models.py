"""What a tenant's settings may hold: model endpoints, keep_alive and numeric ranges."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from tenants.models import Tenant
from tenants.validators import ollama_keep_alive, validate_endpoint, validate_keep_alive


def errors_of(tenant: Tenant) -> dict[str, list[str]]:
    try:
        tenant.full_clean(exclude=["slug", "name"])
    except ValidationError as exc:
        return exc.message_dict
    return {}


# Numeric settings: each has a range, both ends included.
RANGES = [
    ("rate_limit_per_minute", 0, 10_000),
    ("user_rate_limit_per_minute", 0, 1_000),
    ("session_timeout_seconds", 60, 604_800),
    ("context_max_rounds", 0, 100),
    ("num_ctx", 1025, 262_144),  # above OLLAMA_NUM_PREDICT (1024 in the tests)
    ("temperature", 0.0, 2.0),
    ("max_concurrency", 1, 64),
    ("retention_days", 2, 36_500),  # and 0, below
    ("quota_messages_per_day", 0, 10_000_000),
    ("user_quota_messages_per_day", 0, 10_000_000),
    ("quota_tokens_per_month", 0, 10**12),
    ("user_quota_tokens_per_month", 0, 10**12),
]


@pytest.mark.parametrize(("field", "low", "high"), RANGES)
def test_it_accepts_a_numeric_setting_within_its_range(field, low, high):
    for value in (low, high):
        assert errors_of(Tenant(**{field: value})) == {}, value


@pytest.mark.parametrize(("field", "low", "high"), RANGES)
def test_it_refuses_a_numeric_setting_outside_its_range(field, low, high):
    step = 0.1 if isinstance(low, float) else 1
    for value in (low - step, high + step):
        assert field in errors_of(Tenant(**{field: value})), value


def test_it_keeps_messages_forever_with_a_retention_of_0_days():
    assert errors_of(Tenant(retention_days=0)) == {}


def test_it_explains_why_retention_keeps_messages_at_least_two_days():
    with translation.override("en"):
        message = errors_of(Tenant(retention_days=1))["retention_days"][0]
    assert message.startswith("Use 0 to keep messages forever, or 2 to 36500 days")
    assert "yesterday's figures" in message


def test_it_covers_every_numeric_field_of_a_tenant():
    numeric = {
        f.name
        for f in Tenant._meta.fields
        if f.get_internal_type().endswith(("IntegerField", "FloatField")) and f.name != "id"
    }
    assert numeric == {field for field, _, _ in RANGES}


def test_it_wants_num_ctx_to_leave_room_for_the_answer(settings):
    settings.OLLAMA_NUM_PREDICT = 2048
    with translation.override("en"):
        assert "OLLAMA_NUM_PREDICT (2048)" in errors_of(Tenant(num_ctx=2048))["num_ctx"][0]
    assert errors_of(Tenant(num_ctx=2049)) == {}


# keep_alive: what Ollama accepts, sent in the type it expects

GOOD_KEEP_ALIVE = ["-1", "0", "300", "+60", "5m", "1h30m", "-1m", "1.5h", "90s", "500ms", "168h"]
BAD_KEEP_ALIVE = ["abc", "1h30", "5 m", " 5m", "5M", "1d", "--1", "m", "169h", "604801"]


@pytest.mark.parametrize("value", GOOD_KEEP_ALIVE)
def test_it_accepts_keep_alive_in_seconds_or_with_a_unit(value):
    validate_keep_alive(value)


@pytest.mark.parametrize("value", BAD_KEEP_ALIVE)
def test_it_refuses_a_keep_alive_ollama_would_not_read(value):
    with pytest.raises(ValidationError):
        validate_keep_alive(value)


@pytest.mark.parametrize(
    ("stored", "sent"),
    [("-1", -1), ("300", 300), ("+60", 60), ("0", 0), ("5m", "5m"), ("-1m", "-1m"), ("", None)],
)
def test_it_sends_a_keep_alive_in_seconds_as_a_number(stored, sent):
    assert ollama_keep_alive(stored) == sent
    assert type(ollama_keep_alive(stored)) is type(sent)


# Model endpoints: a base URL on an allowed host


@pytest.fixture
def ollama_in_compose(settings):
    settings.OLLAMA_URL = "http://ollama:11434"
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = []


@pytest.mark.parametrize(
    "url", ["http://ollama:11434", "https://ollama/", "http://ollama:11434/v1", "http://OLLAMA"]
)
def test_it_accepts_a_base_url_on_ollama_urls_host(ollama_in_compose, url):
    validate_endpoint(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/internal?x=",  # the report: another host, and a query
        "http://ollama:11434/internal?x=",
        "http://ollama:11434/api?",
        "http://ollama:11434/#frag",
        "http://user:pw@ollama:11434",
        "http://evil.example@ollama:11434",
        "http://ollama:11434/a b",
        "http://ollama:11434\\@10.0.0.5/",
        "http://ollama:99999",
        "ftp://ollama",
        "ollama:11434",
        "http://127.0.0.1:11434",  # the same machine by another name is another host
    ],
)
def test_it_refuses_anything_but_a_base_url_on_an_allowed_host(ollama_in_compose, url):
    with pytest.raises(ValidationError):
        validate_endpoint(url)


def test_it_lets_the_operator_widen_the_allowed_hosts(ollama_in_compose, settings):
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = ["GPU-1.internal"]
    validate_endpoint("http://gpu-1.internal:11434")
    validate_endpoint("http://ollama:11434")
    with pytest.raises(ValidationError, match="ollama, gpu-1.internal"):
        validate_endpoint("http://10.0.0.5")

    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = ["*"]
    validate_endpoint("http://10.0.0.5")


def test_a_keys_last_use_is_written_at_most_once_a_minute(tenant_a):
    from datetime import timedelta

    from django.utils import timezone

    from tenants.models import ApiKey
    from tests.factories import ApiKeyFactory

    raw = ApiKey.generate()
    key = ApiKeyFactory(tenant=tenant_a, key=raw)
    recently = timezone.now() - timedelta(seconds=30)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=recently)
    ApiKey.for_key(raw)
    assert ApiKey.objects.get(pk=key.pk).last_used_at == recently  # no write per request
    a_while_ago = timezone.now() - timedelta(minutes=2)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=a_while_ago)
    ApiKey.for_key(raw)
    assert ApiKey.objects.get(pk=key.pk).last_used_at > a_while_ago
