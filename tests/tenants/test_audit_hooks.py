"""Who writes the audit trail: admin changes, sign-ins and apply_config."""

import pytest
from django.forms.models import model_to_dict
from django.urls import reverse

from channels_im.models import Bot
from tenants.audit_models import AuditEvent
from tenants.config import apply_config
from tenants.models import ApiKey, Membership, Tenant
from tests.factories import WECOM_CREDENTIALS, ApiKeyFactory, BotFactory, MembershipFactory

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
EVERY_SECRET = [*WECOM_CREDENTIALS.values(), "pw", "new-password"]


def last(**lookups) -> AuditEvent:
    event = AuditEvent.objects.filter(**lookups).first()
    assert event is not None, f"no audit event with {lookups}"
    return event


def assert_no_secret_in(event: AuditEvent) -> None:
    text = repr((event.changes, event.detail, event.object_label))
    for secret in EVERY_SECRET:
        assert secret not in text


def tenant_form(tenant, **changes):
    data = model_to_dict(tenant, exclude=["id", "slug", "is_active"])
    data["temperature"] = data["temperature"] or ""
    return {**data, **changes}


# --- the tenant-scoped admin ----------------------------------------------------------


def test_an_admin_change_records_old_and_new_values(client, admin_a, tenant_a):
    client.force_login(admin_a)
    url = reverse("admin:tenants_tenant_change", args=[tenant_a.pk])
    response = client.post(url, tenant_form(tenant_a, model="gemma:2b"), REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302
    event = last(action=Action.CHANGE)
    assert (event.tenant_id, event.tenant_slug) == (tenant_a.pk, "tenant-a")
    assert (event.actor_user_id, event.actor_label) == (admin_a.pk, "alice")
    assert (event.object_type, event.object_id) == ("tenants.tenant", str(tenant_a.pk))
    assert event.changes == {"model": {"old": "qwen2:1.5b", "new": "gemma:2b"}}
    assert event.ip == "10.1.2.3"


def test_saving_without_changes_records_nothing(client, admin_a, tenant_a):
    client.force_login(admin_a)
    client.post(reverse("admin:tenants_tenant_change", args=[tenant_a.pk]), tenant_form(tenant_a))
    assert not AuditEvent.objects.exclude(action=Action.SIGN_IN).exists()


def test_a_bots_credentials_are_recorded_by_name_only(client, admin_a, tenant_a):
    bot = BotFactory(tenant=tenant_a, name="helpdesk")
    client.force_login(admin_a)
    data = {"name": "helpdesk-2", "is_active": "on", "system_prompt": ""}
    data.update(quota_messages_per_day=0, quota_tokens_per_month=0)
    data.update(cred_corp_id="ww-new-corp", cred_agent_id="1000002", cred_secret="new-password")
    response = client.post(reverse("admin:channels_im_bot_change", args=[bot.pk]), data)
    assert response.status_code == 302
    event = last(action=Action.CHANGE, object_type="channels_im.bot")
    assert event.changes == {
        "name": {"old": "helpdesk", "new": "helpdesk-2"},
        "credentials.corp_id": "changed",
        "credentials.secret": "changed",
    }
    assert_no_secret_in(event)


def test_adding_and_deleting_through_the_admin_are_recorded(client, admin_a, tenant_a):
    client.force_login(admin_a)
    add = client.post(
        reverse("admin:channels_im_bot_add"),
        {"tenant": tenant_a.pk, "platform": "wecom", "name": "new-bot"},
    )
    assert add.status_code == 302
    bot = Bot.objects.get(name="new-bot")
    created = last(action=Action.CREATE)
    assert created.changes["name"] == {"old": None, "new": "new-bot"}
    assert created.changes["tenant"] == {"old": None, "new": tenant_a.pk}
    client.post(reverse("admin:channels_im_bot_delete", args=[bot.pk]), {"post": "yes"})
    deleted = last(action=Action.DELETE)
    assert (deleted.object_id, deleted.object_label) == (str(bot.pk), "new-bot")
    assert not Bot.objects.filter(pk=bot.pk).exists()


def test_the_bulk_delete_action_records_each_row(client, superuser, tenant_a, tenant_b):
    client.force_login(superuser)
    bots = [BotFactory(tenant=tenant_a), BotFactory(tenant=tenant_b)]
    action = {"action": "delete_selected", "_selected_action": [b.pk for b in bots], "post": "yes"}
    assert client.post(reverse("admin:channels_im_bot_changelist"), action).status_code == 302
    deleted = AuditEvent.objects.filter(action=Action.DELETE)
    assert {(e.tenant_slug, e.object_label) for e in deleted} == {
        ("tenant-a", bots[0].name),
        ("tenant-b", bots[1].name),
    }


def test_clearing_a_bots_last_error_is_a_recorded_change(client, admin_a, tenant_a):
    bot = BotFactory(tenant=tenant_a)
    bot.record_error("HTTP 500")
    client.force_login(admin_a)
    action = {"action": "clear_last_error", "_selected_action": [bot.pk]}
    client.post(reverse("admin:channels_im_bot_changelist"), action)
    assert last(action=Action.CHANGE).changes["last_error"] == {"old": "HTTP 500", "new": ""}


def test_an_api_key_made_and_switched_off_in_the_admin_is_created_then_revoked(
    client, admin_a, tenant_a
):
    client.force_login(admin_a)
    client.post(
        reverse("admin:tenants_apikey_add"),
        {"tenant": tenant_a.pk, "name": "crm", "scopes": ["chat"], "is_active": "on"},
    )
    key = ApiKey.objects.get(name="crm")
    created = last(action=Action.KEY_CREATED)
    assert created.changes["hashed_key"] == "changed"
    assert created.changes["prefix"] == {"old": None, "new": key.prefix}
    assert created.changes["scopes"] == {"old": None, "new": ["chat"]}
    change = {"tenant": tenant_a.pk, "name": "crm", "scopes": ["chat"]}  # not active
    client.post(reverse("admin:tenants_apikey_change", args=[key.pk]), change)
    revoked = last(action=Action.KEY_REVOKED)
    assert revoked.changes == {"is_active": {"old": True, "new": False}}
    assert revoked.object_label == str(key)


def test_deleting_an_api_key_revokes_it(client, superuser, tenant_a):
    key = ApiKeyFactory(tenant=tenant_a, name="old")
    client.force_login(superuser)
    client.post(reverse("admin:tenants_apikey_delete", args=[key.pk]), {"post": "yes"})
    event = last(action=Action.KEY_REVOKED)
    assert (event.detail, event.object_label) == ({"deleted": True}, str(key))


def test_deleting_a_tenant_keeps_its_chain(client, superuser, tenant_a):
    MembershipFactory(tenant=tenant_a)
    client.force_login(superuser)
    client.post(reverse("admin:tenants_tenant_delete", args=[tenant_a.pk]), {"post": "yes"})
    assert not Tenant.objects.filter(pk=tenant_a.pk).exists()
    event = last(action=Action.DELETE)
    assert (event.tenant_id, event.tenant_slug, event.actor_label) == (
        tenant_a.pk,
        "tenant-a",
        "root",
    )


def test_an_outsiders_refused_change_records_nothing(client, outsider, tenant_a):
    client.force_login(outsider)
    url = reverse("admin:tenants_tenant_change", args=[tenant_a.pk])
    client.post(url, tenant_form(tenant_a, model="evil"))
    assert not AuditEvent.objects.filter(action=Action.CHANGE).exists()


# --- sign-in ---------------------------------------------------------------------------


def sign_in(client, username, password):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR="192.0.2.7",
    )


def test_a_sign_in_goes_to_each_of_the_users_tenants(client, admin_a, tenant_b):
    MembershipFactory(user=admin_a, tenant=tenant_b, role=Membership.Role.AUDITOR)
    assert sign_in(client, "alice", "pw").status_code == 302
    events = AuditEvent.objects.filter(action=Action.SIGN_IN).order_by("tenant_id")
    assert [e.tenant_slug for e in events] == ["tenant-a", "tenant-b"]
    assert {(e.actor_user_id, e.actor_label, e.ip) for e in events} == {
        (admin_a.pk, "alice", "192.0.2.7")
    }


def test_a_failed_sign_in_is_recorded_without_the_password(client, admin_a, superuser):
    assert sign_in(client, "alice", "new-password").status_code == 200
    assert sign_in(client, "nobody", "new-password").status_code == 200
    assert sign_in(client, "root", "pw").status_code == 302
    failed = AuditEvent.objects.filter(action=Action.SIGN_IN_FAILED).order_by("id")
    assert [(e.tenant_slug, e.actor_label, e.actor_user_id) for e in failed] == [
        ("tenant-a", "alice", admin_a.pk),
        ("", "nobody", None),  # an unknown name: the operator's chain
    ]
    for event in failed:
        assert_no_secret_in(event)
    assert last(action=Action.SIGN_IN).tenant_id is None  # the operator


def test_a_sign_in_refused_by_the_lockout_is_a_failed_one(client, admin_a, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", "pw").status_code == 429  # the right password, locked
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == [Action.SIGN_IN_FAILED] * 3


# --- apply_config ---------------------------------------------------------------------


def test_apply_config_records_what_it_creates_and_changes(db):
    key = "crm-key-0123456789abcdef0123456789abcdef"
    bot = {"name": "acme-wecom", "platform": "wecom", **WECOM_CREDENTIALS}
    tenant = {
        "slug": "acme",
        "name": "Acme",
        "bots": [bot],
        "api_keys": [{"name": "crm", "key": key}],
    }
    apply_config({"tenants": [tenant]})
    events = AuditEvent.objects.order_by("id")
    assert [(e.action, e.object_type) for e in events] == [
        (Action.CREATE, "tenants.tenant"),
        (Action.CREATE, "channels_im.bot"),
        (Action.KEY_CREATED, "tenants.apikey"),
    ]
    assert {e.actor_label for e in events} == {"system: apply_config"}
    assert {e.tenant_slug for e in events} == {"acme"}
    for event in events:
        assert_no_secret_in(event)
        assert key not in repr(event.changes)

    tenant["api_keys"][0]["is_active"] = False
    tenant["bots"][0]["secret"] = "new-password"
    apply_config({"tenants": [tenant]})
    assert last(action=Action.KEY_REVOKED).changes == {"is_active": {"old": True, "new": False}}
    assert last(action=Action.CHANGE).changes == {"credentials.secret": "changed"}
    apply_config({"tenants": [tenant]})  # nothing changes: nothing recorded
    assert AuditEvent.objects.count() == 5
