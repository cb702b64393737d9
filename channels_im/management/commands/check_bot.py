"""`manage.py check_bot NAME [--tenant SLUG] [--language CODE]`: a bot's self-test.

Prints each check, passed, failed or skipped, with what was found and what to do, and
exits with status 1 if any check failed (channels_im/selftest.py does the work).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import translation

from channels_im import selftest
from channels_im.models import Bot
from common.selftest import FAILED, PASSED, STATUS_LABELS, localized


def find_bot(name: str, tenant: str | None) -> Bot:
    """The one bot called `name` (in tenant `tenant`, if given); CommandError otherwise."""
    bots = Bot.objects.select_related("tenant").filter(name=name)
    if tenant:
        bots = bots.filter(tenant__slug=tenant)
    found = list(bots[:10])
    if not found:
        where = f' in tenant "{tenant}"' if tenant else ""
        raise CommandError(f'no bot named "{name}"{where}')
    if len(found) > 1:
        slugs = ", ".join(sorted(bot.tenant.slug for bot in found))
        raise CommandError(f'several tenants have a bot named "{name}" ({slugs}): pass --tenant')
    return found[0]


class Command(BaseCommand):
    help = "Test a bot: its credentials, model, callback URL and platform settings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the bot's name")
        parser.add_argument("--tenant", metavar="SLUG", help="the bot's tenant")
        parser.add_argument(
            "--language",
            choices=[code for code, _name in settings.LANGUAGES],
            help="the language of the findings (default: LANGUAGE_CODE)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        bot = find_bot(options["name"], options["tenant"])
        try:
            findings = selftest.run(bot)
        except selftest.TooSoon as exc:
            raise CommandError(
                f"{bot.name} was tested moments ago; try again in {exc.retry_after} s"
            ) from exc
        with translation.override(options["language"] or settings.LANGUAGE_CODE):
            for finding in findings:
                self.stdout.write(self.describe(finding))
        failed = sum(finding["status"] == FAILED for finding in findings)
        if failed:
            raise CommandError(f"{failed} of {len(findings)} checks failed.", returncode=1)
        self.stdout.write(f"{bot.name}: no check failed ({len(findings)} checks).")

    def describe(self, finding: dict[str, Any]) -> str:
        """`[status] label: detail`, and `  → action` on the next line when there is one."""
        status = finding["status"]
        style = {PASSED: self.style.SUCCESS, FAILED: self.style.ERROR}.get(
            status, self.style.WARNING
        )
        label, detail, action = (localized(finding[name]) for name in ("label", "detail", "action"))
        line = f"{style(f'[{STATUS_LABELS[status]}]')} {label}" + (f": {detail}" if detail else "")
        return line + (f"\n    → {action}" if action else "")
