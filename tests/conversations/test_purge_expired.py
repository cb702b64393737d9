"""Running retention: the nightly beat task and `manage.py purge_expired`."""

from io import StringIO

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.core.management import CommandError, call_command

from conversations.models import Conversation, Message
from conversations.tasks import purge_expired
from tenants.audit_models import AuditEvent
from tests.conversations.test_retention import days_ago, exchange, retain
from tests.factories import BotFactory, ConversationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenants(tenant_a, tenant_b):
    """A redacts after 2 days, B deletes after 30; each has three old exchanges."""
    for tenant, age in ((tenant_a, 3), (tenant_b, 31)):
        bot = BotFactory(tenant=tenant, name=f"{tenant.slug}-bot")
        for n in range(3):
            exchange(ConversationFactory(bot=bot), days_ago(age, hours=n), n=n)
    retain(tenant_a, days=2, action="redact")
    retain(tenant_b, days=30, action="delete")
    return tenant_a, tenant_b


def run(*args):
    out = StringIO()
    call_command("purge_expired", *args, stdout=out)
    return out.getvalue().splitlines()


def test_the_beat_runs_the_purge_every_night_on_the_delivery_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["purge-expired-messages"]
    assert entry["task"] == "conversations.tasks.purge_expired"
    assert entry["schedule"] == crontab(minute=30, hour=settings.RETENTION_HOUR)
    assert settings.CELERY_TASK_ROUTES[entry["task"]] == {"queue": "delivery"}
    assert settings.CELERY_TIMEZONE == settings.TIME_ZONE


def test_the_task_purges_every_tenant_as_the_system(tenants):
    assert purge_expired() == 12
    assert Message.objects.filter(tenant=tenants[0], redacted_at__isnull=False).count() == 6
    assert not Message.objects.filter(tenant=tenants[1]).exists()
    labels = AuditEvent.objects.filter(action=AuditEvent.Action.PURGE).values_list(
        "tenant_slug", "actor_label"
    )
    assert sorted(labels) == [
        ("tenant-a", "system: retention"),
        ("tenant-b", "system: retention"),
    ]


def test_the_command_prints_what_it_purged(tenants):
    lines = run()
    assert lines[0].startswith("tenant-a: 6 message(s) redacted (created before ")
    assert lines[0].endswith(" UTC)")
    assert lines[1].startswith("tenant-b: 6 message(s) and 3 conversation(s) deleted")
    assert AuditEvent.objects.filter(actor_label="system: purge_expired").count() == 2
    assert run()[1].startswith("tenant-b: 0 message(s) and 0 conversation(s) deleted")


def test_a_dry_run_counts_and_changes_nothing(tenants):
    lines = run("--dry-run")
    assert lines[0].startswith("tenant-a: 6 message(s) would be redacted")
    assert lines[1].startswith("tenant-b: 6 message(s) and 3 conversation(s) would be deleted")
    assert Message.objects.count() == 12 and Conversation.objects.count() == 6
    assert not Message.objects.filter(redacted_at__isnull=False).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PURGE).exists()
    assert run()[1].startswith("tenant-b: 6 message(s) and 3 conversation(s) deleted")


def test_one_tenant_only(tenants):
    assert [line.split(":")[0] for line in run("--tenant", "tenant-b")] == ["tenant-b"]
    assert not Message.objects.filter(redacted_at__isnull=False).exists()  # A untouched


def test_it_says_why_a_tenant_is_left_alone(tenants):
    retain(tenants[0], days=0)
    retain(tenants[1], days=30, action="delete", hold=True)
    assert run() == [
        "tenant-a: keeps messages forever",
        "tenant-b: under legal hold, nothing purged",
    ]
    assert Message.objects.count() == 12


def test_an_unknown_tenant_is_an_error(db):
    with pytest.raises(CommandError, match='no tenant "nobody"'):
        run("--tenant", "nobody")
