import pytest
from rest_framework.test import APIClient

from tenants.models import ApiKey
from tests.factories import ApiKeyFactory


@pytest.fixture
def key_for(db):
    """A raw API key of `tenant` with `scopes`."""

    def make(tenant, *scopes: str) -> str:
        raw = ApiKey.generate()
        ApiKeyFactory(tenant=tenant, key=raw, scopes=list(scopes))
        return raw

    return make


@pytest.fixture
def api(key_for, tenant_a, fake_ollama):
    """An API client of tenant A holding every scope; tenant A's model is the fake."""
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(tenant_a, *ApiKey.SCOPES)}")
    return client
