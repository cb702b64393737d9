"""Run retention now (conversations/retention.py): what the nightly beat task does."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations import retention
from tenants.audit import Actor
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Delete or redact message content older than each tenant's retention, as the "
        "nightly beat task does, and print the counts. Tenants under legal hold, and "
        "those keeping messages forever, are left alone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="only this tenant")
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would go; change nothing"
        )

    def handle(self, *args: Any, tenant: str | None, dry_run: bool, **options: Any) -> None:
        tenants = Tenant.objects.order_by("pk")
        if tenant is not None:
            tenants = tenants.filter(slug=tenant)
            if not tenants:
                raise CommandError(f'no tenant "{tenant}"')
        actor = Actor.system("purge_expired")
        for each in tenants:
            if each.legal_hold:
                self.stdout.write(f"{each.slug}: under legal hold, nothing purged")
            elif each.retention_days == 0:
                self.stdout.write(f"{each.slug}: keeps messages forever")
            elif dry_run:
                self.stdout.write(report(retention.preview(each), "would be "))
            else:
                self.stdout.write(report(retention.purge(each, actor=actor)))


def report(run: retention.Purge, mood: str = "") -> str:
    """One tenant's line, e.g. "acme: 1200 message(s) redacted (created before …)"."""
    what = f"{run.messages} message(s)"
    if run.action == retention.Action.DELETE:
        what += f" and {run.conversations} conversation(s) {mood}deleted"
    else:
        what += f" {mood}redacted"
    return f"{run.tenant.slug}: {what} (created before {run.cutoff:%Y-%m-%d %H:%M:%S %Z})"
