"""The self-test in the bot admin: the "Test this bot" button's view, the passed/failed
badge of the bot list, and the findings on the bot's page.

Running the test takes the right to change the bot: it calls the platform and the
model with the bot's secrets, which an auditor may not do. Another tenant's bot is
not found (404), as everywhere in the admin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from common.selftest import FAILED, PASSED, STATUS_LABELS, localized

from . import selftest
from .models import Bot

if TYPE_CHECKING:
    from django.urls import URLPattern

    from tenants.admin import TenantScopedAdmin

    Base = TenantScopedAdmin
else:
    Base = object


class SelfTestAdmin(Base):
    """A mixin of BotAdmin (a TenantScopedAdmin)."""

    def get_urls(self) -> list[URLPattern]:
        test = path(
            "<path:object_id>/test/",
            self.admin_site.admin_view(self.self_test_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_test",
        )
        # Before the base's catch-all "<object_id>/", which would take this path.
        return [test, *super().get_urls()]

    def self_test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST (CSRF-checked by admin_view): run the self-test, back to the bot's page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        bot = self.get_object(request, unquote(object_id))
        if bot is None:
            raise Http404
        if not self.has_change_permission(request, bot):
            raise PermissionDenied
        try:
            findings = selftest.run(bot)
        except selftest.TooSoon:
            message = gettext("“%(name)s” was tested moments ago; test again in a few seconds.")
            message, level = message % {"name": bot.name}, messages.WARNING
        else:
            counts = {s: sum(f["status"] == s for f in findings) for s in STATUS_LABELS}
            message = gettext(
                "Self-test of “%(name)s”: %(passed)d passed, %(failed)d failed, "
                "%(skipped)d skipped."
            ) % {"name": bot.name, **counts}
            level = messages.WARNING if counts[FAILED] else messages.SUCCESS
        self.message_user(request, message, level)
        return redirect(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", bot.pk)

    @admin.display(description=_("self-test"), ordering="self_tested_at")
    def self_test_badge(self, bot: Bot) -> str:
        """passed or failed, and when; "-" for a bot never tested."""
        if bot.self_tested_at is None:
            return "-"
        status = PASSED if bot.self_test_passed else FAILED
        when = formats.localize(timezone.localtime(bot.self_tested_at))
        return format_html(
            '<span class="self-test-badge self-test-{}">{}</span> <span class="quiet">{}</span>',
            status,
            STATUS_LABELS[status],
            when,
        )

    @admin.display(description=_("last self-test"))
    def self_test_report(self, bot: Bot) -> str:
        """Each finding of the last test, in the reader's language: status, what was
        checked, what was found, what to do."""
        if bot.self_tested_at is None:
            return str(_("Not tested yet: use “Test this bot” at the top of this page."))
        rows = format_html_join(
            "",
            '<tr><td><span class="self-test-badge self-test-{}">{}</span></td>'
            '<td><strong>{}</strong><div>{}</div><div class="self-test-action">{}</div></td></tr>',
            (_row(finding) for finding in bot.self_test),
        )
        when = formats.localize(timezone.localtime(bot.self_tested_at))
        return format_html('<table class="self-test"><caption>{}</caption>{}</table>', when, rows)

    class Media:
        css = {"all": ["channels_im/selftest.css"]}


def _row(finding: dict[str, Any]) -> tuple[str, ...]:
    status = finding.get("status", "")
    texts = [localized(finding.get(name) or {}) for name in ("label", "detail", "action")]
    return (status, str(STATUS_LABELS.get(status, status)), *texts)
