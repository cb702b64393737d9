"""Recompute the admin dashboard's figures from the log (conversations/rollup.py)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations import rollup


class Command(BaseCommand):
    help = (
        "Recompute the dashboard's daily figures of the last DAYS days from the conversation "
        "log. The beat keeps today and yesterday; run this once after upgrading to fill the "
        "month before. Days whose messages were deleted lose their figures, except those "
        "that a tenant's retention deleted, which keep theirs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=30, help="days back, today included")

    def handle(self, *args: Any, days: int, **options: Any) -> None:
        if days < 1:
            raise CommandError("--days must be 1 or more")
        rows = rollup.refresh(days)
        self.stdout.write(f"{rows} rollup row(s) for the last {days} day(s)")
