"""`manage.py verify_audit [--tenant SLUG]`: recompute the audit trail's hash chains.

Prints one line per chain, and exits with status 1 if any chain has an event that does
not match (the work is in tenants.audit_verify).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.audit_verify import ChainReport, chain_ids, verify


def describe(report: ChainReport) -> str:
    name = f'tenant "{report.slug}" (id {report.tenant_id})' if report.tenant_id else "operator"
    if report.bad is None:
        return f"{name}: {report.checked} events checked, OK. Head hash: {report.head or '-'}"
    when = report.bad.created_at.isoformat(sep=" ", timespec="microseconds")
    return (
        f"{name}: MISMATCH after {report.checked} good events. First bad event: "
        f"id {report.bad.pk} at {when}: {report.problem}"
    )


class Command(BaseCommand):
    help = "Check the audit trail's hash chains; name the first event that does not match."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="check only this tenant's chain")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            ids = chain_ids(options["tenant"])
        except LookupError as exc:
            raise CommandError(f'no tenant "{options["tenant"]}" and no events of one') from exc
        reports = verify(ids)
        for report in reports:
            self.stdout.write(describe(report))
        bad = sum(report.bad is not None for report in reports)
        events = sum(report.checked for report in reports)
        if bad:
            raise CommandError(f"{bad} of {len(reports)} chains do not verify.", returncode=1)
        self.stdout.write(f"{len(reports)} chains, {events} events: all verify.")
