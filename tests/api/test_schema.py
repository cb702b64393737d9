"""The OpenAPI schema: valid, complete, and true to what the API answers."""

import re

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from assistant.api_urls import urlpatterns
from assistant.wsgi import application
from conversations.api import messages
from tenants.models import ApiKey

pytestmark = pytest.mark.django_db

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)


def test_the_schema_is_valid_openapi_3_and_names_every_endpoint(client):
    document = client.get("/api/v1/schema/?format=json").json()
    validate(document)
    documented = {path for path in document["paths"]}
    for pattern in urlpatterns:
        route = str(pattern.pattern).strip("^$")
        if route in ("schema/", "docs/", ""):
            continue
        assert any(
            path.removeprefix("/api/v1/").startswith(route.split("<")[0].split("(")[0])
            for path in documented
        ), route


def test_the_docs_page_needs_nothing_from_the_internet(client):
    page = client.get("/api/v1/docs/").content.decode()
    assert "swagger-ui" in page
    # Every script, style sheet and icon from this server (the page's random tokens may
    # spell anything, "cdn" among it).
    loaded = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page)
    assert loaded and all(url.startswith("/") and not url.startswith("//") for url in loaded)
    assert "https://" not in page.split("</head>")[0]


@pytest.fixture
def bearer(tenant_a, key_for, fake_ollama, monkeypatch):
    """A key with every scope; waiting and streaming bounded so a generated case that
    asks to wait 60 s does not."""
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.save()
    settle = messages.settle
    monkeypatch.setattr(messages, "settle", lambda pk, seconds, response: settle(pk, 0, response))
    monkeypatch.setattr(messages, "STREAM_LIMIT_SECONDS", 0.2)
    # As Django's test client does: a request's start and end must not close the
    # test's database connection (and its transaction).
    for signal in (signals.request_started, signals.request_finished):
        signal.disconnect(close_old_connections)
    yield {"Authorization": f"Bearer {key_for(tenant_a, *ApiKey.SCOPES)}"}
    for signal in (signals.request_started, signals.request_finished):
        signal.connect(close_old_connections)


@schema.parametrize()
@hypothesis.settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)
def test_no_input_gets_a_500_or_an_answer_the_schema_does_not_describe(case, bearer):
    # Every check of the responses. Left out: whether a schema-valid body is accepted (a
    # bot's required credentials depend on its platform, which a schema cannot say: a
    # documented 400) and whether a schema-invalid one is refused (DRF reads 5 as "5").
    excluded = [positive_data_acceptance, negative_data_rejection]
    case.call_and_validate(headers=bearer, excluded_checks=excluded)
