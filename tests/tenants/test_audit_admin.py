"""The audit trail in the admin: read-only for everyone, each tenant's members see their
tenant's events, the operator sees every chain."""

import pytest
from django.urls import reverse
from django.utils import timezone

from tenants.audit import Actor, record
from tenants.audit_models import AuditEvent

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
EVENTS = reverse("admin:tenants_auditevent_changelist")


@pytest.fixture
def trail(tenant_a, tenant_b):
    """An event in each chain, recorded before anyone signs in."""
    changes = {"model": {"old": "qwen2:1.5b", "new": "gemma:2b"}, "credentials.secret": "changed"}
    return {
        "a": record(
            Action.CHANGE, tenant=tenant_a, obj=tenant_a, actor=Actor("alpha"), changes=changes
        ),
        "b": record(Action.CHANGE, tenant=tenant_b, obj=tenant_b, actor=Actor("bravo")),
        "operator": record(Action.SIGN_IN, tenant=None, actor=Actor("operator-only")),
    }


def url(event, view="change"):
    return reverse(f"admin:tenants_auditevent_{view}", args=[event.pk])


@pytest.mark.parametrize("user", ["admin_a", "auditor_a"])
def test_a_tenants_members_see_only_its_events(client, request, trail, user):
    client.force_login(request.getfixturevalue(user))
    page = client.get(EVENTS, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "alpha" in page and "bravo" not in page and "operator-only" not in page
    assert client.get(url(trail["a"])).status_code == 200
    assert client.get(url(trail["b"])).status_code == 302  # "not found", as elsewhere
    assert client.get(url(trail["operator"])).status_code == 302


def test_the_operator_sees_every_chain(client, superuser, trail):
    client.force_login(superuser)
    page = client.get(EVENTS).content.decode()
    assert "alpha" in page and "bravo" in page and "operator-only" in page


def test_an_event_shows_its_changes_with_secrets_only_as_changed(client, admin_a, trail):
    client.force_login(admin_a)
    page = client.get(url(trail["a"]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<code>model</code>: &quot;qwen2:1.5b&quot; → &quot;gemma:2b&quot;" in page
    assert "<code>credentials.secret</code>: changed" in page
    assert trail["a"].hash in page


def test_nobody_can_add_change_or_delete_an_event(client, superuser, trail):
    client.force_login(superuser)
    event = trail["a"]
    assert client.get(reverse("admin:tenants_auditevent_add")).status_code == 403
    assert client.post(url(event), {"action": "view", "actor_label": "forged"}).status_code == 403
    assert client.post(url(event, "delete"), {"post": "yes"}).status_code == 403
    changelist = client.get(EVENTS).content.decode()
    assert "delete_selected" not in changelist
    action = {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    client.post(EVENTS, action)
    assert AuditEvent.objects.get(pk=event.pk).actor_label == "alpha"


def listed(client, **params):
    response = client.get(EVENTS, params)
    assert response.status_code == 200
    return [event.actor_label for event in response.context["cl"].result_list]


def test_events_filter_by_action_actor_and_date_and_search(client, superuser, trail):
    client.force_login(superuser)
    assert listed(client, action__exact="change") == ["bravo", "alpha"]
    assert listed(client, actor="bravo") == ["bravo"]
    # As the date filter's "Today" link asks.
    day = str(
        timezone.localtime(trail["a"].created_at).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    assert "alpha" in listed(client, created_at__gte=day)
    assert listed(client, created_at__lt=day) == []
    assert listed(client, q="tenant-b") == ["bravo"]
