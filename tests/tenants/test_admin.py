"""The tenant-scoped admin: tenants and API keys, per role (members: test_roles.py)."""

import pytest
from django.contrib.messages import get_messages
from django.forms.models import model_to_dict
from django.urls import reverse

from tenants.models import ApiKey, Tenant
from tests.factories import ApiKeyFactory, MembershipFactory

pytestmark = pytest.mark.django_db


TENANTS = reverse("admin:tenants_tenant_changelist")
KEYS = reverse("admin:tenants_apikey_changelist")
ADD_KEY = reverse("admin:tenants_apikey_add")


def tenant_url(tenant):
    return reverse("admin:tenants_tenant_change", args=[tenant.pk])


def tenant_form(tenant, **changes):
    """The change form as a tenant admin posts it (slug and active are read-only)."""
    data = model_to_dict(tenant, exclude=["id", "slug", "is_active"])
    data["temperature"] = data["temperature"] or ""
    return {**data, **changes}


# --- tenants ---------------------------------------------------------------------------


def test_it_lists_only_the_users_own_tenants(client, admin_a, tenant_b):
    client.force_login(admin_a)
    response = client.get(TENANTS)
    assert response.status_code == 200
    assert b"Tenant A" in response.content
    assert b"Tenant B" not in response.content


def test_it_lets_a_tenant_admin_edit_their_tenant_config(client, admin_a, tenant_a):
    client.force_login(admin_a)
    assert client.get(tenant_url(tenant_a)).status_code == 200
    data = tenant_form(tenant_a, model="gemma:2b", system_prompt="Be brief.", slug="hijack")
    response = client.post(tenant_url(tenant_a), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    tenant_a.refresh_from_db()
    assert (tenant_a.model, tenant_a.system_prompt) == ("gemma:2b", "Be brief.")
    assert tenant_a.slug == "tenant-a"  # read-only for tenant admins


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_ctx", 2_147_483_647),
        ("rate_limit_per_minute", 1_000_000),
        ("session_timeout_seconds", 30),
        ("keep_alive", "forever"),
        ("keep_alive", "1h30"),
        ("model_endpoint", "http://10.0.0.5/internal?x="),
    ],
)
def test_it_refuses_a_tenant_setting_out_of_range(client, admin_a, tenant_a, field, value):
    client.force_login(admin_a)
    response = client.post(tenant_url(tenant_a), tenant_form(tenant_a, **{field: value}))
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == [field]
    tenant_a.refresh_from_db()
    assert getattr(tenant_a, field) != value


def test_it_saves_keep_alive_in_seconds(client, admin_a, tenant_a):
    client.force_login(admin_a)
    response = client.post(tenant_url(tenant_a), tenant_form(tenant_a, keep_alive="-1"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    tenant_a.refresh_from_db()
    assert tenant_a.keep_alive == "-1"


def test_it_keeps_tenant_creation_and_deletion_to_the_superuser(
    client, admin_a, superuser, tenant_a
):
    client.force_login(admin_a)
    assert client.get(reverse("admin:tenants_tenant_add")).status_code == 403
    delete = reverse("admin:tenants_tenant_delete", args=[tenant_a.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert Tenant.objects.filter(pk=tenant_a.pk).exists()

    client.force_login(superuser)
    assert client.get(reverse("admin:tenants_tenant_add")).status_code == 200
    assert client.get(TENANTS).status_code == 200


# --- API keys --------------------------------------------------------------------------


def test_it_shows_a_new_api_key_once_and_stores_only_its_hash(client, admin_a, tenant_a):
    client.force_login(admin_a)
    response = client.post(ADD_KEY, {"tenant": tenant_a.pk, "name": "crm", "is_active": "on"})
    assert response.status_code == 302
    key = ApiKey.objects.get(tenant=tenant_a, name="crm")
    shown = [str(m) for m in get_messages(response.wsgi_request) if "ima_" in str(m)]
    assert len(shown) == 1
    raw_key = next(word for word in shown[0].split() if word.startswith("ima_")).rstrip(".")
    assert key.matches(raw_key)
    assert raw_key not in {key.hashed_key, key.prefix}

    assert raw_key in client.get(response.url).content.decode()  # the page after saving
    page = client.get(reverse("admin:tenants_apikey_change", args=[key.pk])).content.decode()
    assert raw_key not in page  # and never again
    assert key.hashed_key not in page
    assert key.prefix in page


def test_it_stamps_a_single_tenant_admins_tenant_on_new_keys(client, admin_a):
    client.force_login(admin_a)
    page = client.get(ADD_KEY).content.decode()
    assert 'type="hidden" name="tenant"' in page


def test_it_refuses_a_key_for_another_tenant(client, admin_a, tenant_b):
    client.force_login(admin_a)
    response = client.post(ADD_KEY, {"tenant": tenant_b.pk, "name": "sneaky", "is_active": "on"})
    assert response.status_code == 200  # the form again, with an error
    assert response.context["adminform"].form.errors["tenant"]
    assert not ApiKey.objects.filter(name="sneaky").exists()


def test_it_lists_keys_without_their_hash(client, admin_a, tenant_a):
    key = ApiKeyFactory(tenant=tenant_a, name="crm")
    client.force_login(admin_a)
    page = client.get(KEYS).content.decode()
    assert "crm" in page and key.prefix in page
    assert key.hashed_key not in page


def test_it_lets_an_admin_of_two_tenants_pick_the_tenant(client, admin_a, tenant_b):
    MembershipFactory(user=admin_a, tenant=tenant_b)
    client.force_login(admin_a)
    page = client.get(ADD_KEY).content.decode()
    assert 'type="hidden" name="tenant"' not in page
    assert "Tenant B" in page
