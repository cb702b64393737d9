"""A tenant's retention and legal hold where they are set: the admin, the REST API and
apply_config. The hold is the operator's; each change of it is in the audit trail."""

import pytest
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils import translation
from rest_framework.test import APIClient

from tenants.audit_models import AuditEvent
from tenants.audit_verify import verify_chain
from tenants.config import ConfigError, apply_config
from tenants.models import ApiKey, Tenant

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action


def tenant_url(tenant):
    return reverse("admin:tenants_tenant_change", args=[tenant.pk])


def tenant_form(tenant, **changes):
    """The change form's data (a tenant admin's lacks the read-only slug and active)."""
    data = model_to_dict(tenant, exclude=["id"])
    data["temperature"] = data["temperature"] or ""
    return {**data, **changes}


def post(client, tenant, **changes):
    response = client.post(tenant_url(tenant), tenant_form(tenant, **changes))
    assert response.status_code == 302, response.context["adminform"].form.errors
    tenant.refresh_from_db()
    return response


def events(tenant, *actions):
    return list(AuditEvent.objects.filter(tenant_id=tenant.pk, action__in=actions).order_by("id"))


# --- the admin ---------------------------------------------------------------------------


def test_the_operator_sets_and_lifts_a_hold_and_the_trail_says_so(client, superuser, tenant_a):
    client.force_login(superuser)
    post(client, tenant_a, legal_hold=True, retention_days=30, retention_action="delete")
    assert (tenant_a.legal_hold, tenant_a.retention_days, tenant_a.retention_action) == (
        True,
        30,
        "delete",
    )
    post(client, tenant_a, legal_hold=False)
    assert tenant_a.legal_hold is False
    on, off = events(tenant_a, Action.LEGAL_HOLD_ON, Action.LEGAL_HOLD_OFF)
    assert on.action == Action.LEGAL_HOLD_ON and off.action == Action.LEGAL_HOLD_OFF
    assert on.actor_label == off.actor_label == "root"
    assert on.changes["legal_hold"] == {"old": False, "new": True}
    assert on.changes["retention_days"] == {"old": 0, "new": 30}  # saved with it
    assert off.changes == {"legal_hold": {"old": True, "new": False}}
    assert verify_chain(tenant_a.pk).bad is None


def test_a_change_that_leaves_the_hold_alone_is_a_plain_change(client, superuser, tenant_a):
    client.force_login(superuser)
    post(client, tenant_a, retention_days=90)
    assert events(tenant_a, Action.CHANGE)[0].changes == {"retention_days": {"old": 0, "new": 90}}
    assert not events(tenant_a, Action.LEGAL_HOLD_ON, Action.LEGAL_HOLD_OFF)


def test_a_tenant_admin_sets_retention_but_only_sees_the_hold(client, admin_a, tenant_a):
    client.force_login(admin_a)
    page = client.get(tenant_url(tenant_a)).content.decode()
    assert 'name="retention_days"' in page and 'name="retention_action"' in page
    assert 'name="legal_hold"' not in page  # shown read-only, as text
    post(client, tenant_a, retention_days=7, legal_hold=True)
    assert (tenant_a.retention_days, tenant_a.legal_hold) == (7, False)
    assert not events(tenant_a, Action.LEGAL_HOLD_ON)


def test_the_tenant_admin_cannot_lift_the_operators_hold(client, admin_a, tenant_a):
    Tenant.objects.filter(pk=tenant_a.pk).update(legal_hold=True)
    tenant_a.refresh_from_db()
    client.force_login(admin_a)
    post(client, tenant_a, legal_hold=False)
    assert tenant_a.legal_hold is True


def test_the_admin_refuses_a_retention_shorter_than_two_days(client, admin_a, tenant_a):
    client.force_login(admin_a)
    response = client.post(tenant_url(tenant_a), tenant_form(tenant_a, retention_days=1))
    assert response.status_code == 200
    assert "retention_days" in response.context["adminform"].form.errors


# --- the REST API --------------------------------------------------------------------------


@pytest.fixture
def api(key_for, tenant_a):
    client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(tenant_a, *ApiKey.SCOPES)}")
    return client


def test_the_api_shows_and_changes_retention(api, tenant_a):
    body = api.get("/api/v1/tenant/").json()
    assert (body["retention_days"], body["retention_action"], body["legal_hold"]) == (
        0,
        "redact",
        False,
    )
    changed = api.patch(
        "/api/v1/tenant/", {"retention_days": 14, "retention_action": "delete"}, format="json"
    )
    assert changed.status_code == 200
    tenant_a.refresh_from_db()
    assert (tenant_a.retention_days, tenant_a.retention_action) == (14, "delete")


def test_the_api_refuses_bad_retention_values_by_name(api):
    response = api.patch(
        "/api/v1/tenant/", {"retention_days": 1, "retention_action": "shred"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"retention_days", "retention_action"}


@pytest.mark.parametrize("held", [False, True])
def test_the_api_refuses_to_set_or_lift_a_hold_naming_the_field(api, tenant_a, held):
    Tenant.objects.filter(pk=tenant_a.pk).update(legal_hold=held)
    response = api.patch(
        "/api/v1/tenant/", {"legal_hold": not held, "retention_days": 3}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "legal_hold": ["Only the platform operator can set or lift a legal hold."]
    }
    tenant_a.refresh_from_db()
    assert (tenant_a.legal_hold, tenant_a.retention_days) == (held, 0)
    assert not events(tenant_a, Action.CHANGE, Action.LEGAL_HOLD_ON, Action.LEGAL_HOLD_OFF)


def test_the_api_accepts_the_hold_sent_back_unchanged(api, tenant_a):
    settings = api.get("/api/v1/tenant/").json()
    response = api.patch("/api/v1/tenant/", {**settings, "retention_days": 5}, format="json")
    assert response.status_code == 200
    tenant_a.refresh_from_db()
    assert tenant_a.retention_days == 5


# --- apply_config -----------------------------------------------------------------------


def config(**tenant):
    return {"tenants": [{"slug": "acme", "name": "Acme", **tenant}]}


def test_apply_config_sets_retention_and_the_hold(db):
    apply_config(config(retention_days=30, retention_action="delete"))
    acme = Tenant.objects.get(slug="acme")
    assert (acme.retention_days, acme.retention_action, acme.legal_hold) == (30, "delete", False)
    assert events(acme, Action.CREATE)
    apply_config(config(retention_days=30, retention_action="delete", legal_hold=True))
    acme.refresh_from_db()
    assert acme.legal_hold is True
    (on,) = events(acme, Action.LEGAL_HOLD_ON)
    assert on.actor_label == "system: apply_config"
    apply_config(config(legal_hold=False))
    assert len(events(acme, Action.LEGAL_HOLD_OFF)) == 1


def test_apply_config_creating_a_tenant_under_hold_records_the_hold(db):
    apply_config(config(legal_hold=True))
    acme = Tenant.objects.get(slug="acme")
    assert [event.action for event in events(acme, Action.CREATE, Action.LEGAL_HOLD_ON)] == [
        Action.LEGAL_HOLD_ON
    ]


def test_apply_config_names_bad_retention_values(db):
    with pytest.raises(ConfigError) as caught:
        apply_config(config(retention_days=1, retention_action="shred", legal_hold="yes"))
    errors = "\n".join(caught.value.errors)
    assert "tenants[0].legal_hold: expected a boolean, got a string" in errors
    with translation.override("en"), pytest.raises(ConfigError) as caught:
        apply_config(config(retention_days=1, retention_action="shred"))
    errors = "\n".join(caught.value.errors)
    assert "tenants[0].retention_days: Use 0 to keep messages forever" in errors
    assert "tenants[0].retention_action: Value 'shred' is not a valid choice." in errors
    assert not Tenant.objects.filter(slug="acme").exists()
