"""A tenant's admission settings (answers at once, fallback model) in the model's checks,
`apply_config` and the REST API."""

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from tenants.config import apply_config
from tenants.models import ApiKey, Tenant

pytestmark = pytest.mark.django_db


def test_a_fallback_must_differ_from_the_model_or_its_endpoint(settings):
    tenant = Tenant(slug="acme", name="Acme", model="qwen2:1.5b", fallback_model="qwen2:1.5b")
    with pytest.raises(ValidationError) as refused:
        tenant.full_clean()
    assert "fallback_model" in refused.value.message_dict
    tenant.fallback_model_endpoint = f"{settings.OLLAMA_URL}/"  # the same server
    with pytest.raises(ValidationError):
        tenant.full_clean()
    tenant.fallback_model = "gemma:2b"
    tenant.full_clean()


def test_a_fallback_endpoint_is_checked_like_the_model_endpoint():
    tenant = Tenant(slug="acme", name="Acme", fallback_model_endpoint="http://10.0.0.5:11434")
    with pytest.raises(ValidationError) as refused:
        tenant.full_clean()
    assert "fallback_model_endpoint" in refused.value.message_dict


def test_apply_config_sets_them(settings):
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = ["gpu-2"]
    tenant = {
        "slug": "acme",
        "name": "Acme",
        "max_concurrency": 4,
        "fallback_model_endpoint": "http://gpu-2:11434",
        "fallback_model": "gemma:2b",
    }
    apply_config({"tenants": [tenant]})
    acme = Tenant.objects.get(slug="acme")
    assert (acme.max_concurrency, acme.fallback_endpoint, acme.fallback_model) == (
        4,
        "http://gpu-2:11434",
        "gemma:2b",
    )


def test_the_api_reads_and_changes_them_with_the_model_s_checks(tenant_a, key_for):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(tenant_a, *ApiKey.SCOPES)}")
    shown = api.get("/api/v1/tenant/").json()
    assert (shown["max_concurrency"], shown["fallback_model"]) == (2, "")
    changed = api.patch(
        "/api/v1/tenant/", {"max_concurrency": 1, "fallback_model": "gemma:2b"}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    tenant_a.refresh_from_db()
    assert (tenant_a.max_concurrency, tenant_a.fallback_model) == (1, "gemma:2b")
    refused = api.patch("/api/v1/tenant/", {"max_concurrency": 0}, format="json")
    assert refused.status_code == 400 and "max_concurrency" in refused.json()["errors"]
