import pytest
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient

from tenants.models import ApiKey


@pytest.fixture
def api(key_for, tenant_a, fake_ollama):
    """An API client of tenant A holding every scope; tenant A's model is the fake."""
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(tenant_a, *ApiKey.SCOPES)}")
    return client


def read_stream(response) -> str:
    """The whole body of a streamed response whose content is async (server-sent events
    run on the event loop), read as Django's ASGI handler would."""

    async def read() -> bytes:
        return b"".join([part async for part in response.streaming_content])

    return async_to_sync(read)().decode()
