"""Use against quota as the admin shows it, one line per quota, in the reader's language."""

from __future__ import annotations

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from channels_im.models import Bot
from tenants.models import Tenant

from . import quotas


def lines(tenant: Tenant, standing: quotas.Standing) -> SafeString:
    """ "12 of 100 messages today", "5,400 tokens this month (1,200 of them estimated), no
    quota" …, and when the counts start over."""
    period = quotas.Period.at(tenant, timezone.now())
    messages = {"used": f"{standing.messages:,}", "limit": f"{standing.messages_per_day:,}"}
    tokens = {"used": f"{standing.tokens:,}", "limit": f"{standing.tokens_per_month:,}"}
    shown = [
        _("%(used)s of %(limit)s messages today") % messages
        if standing.messages_per_day
        else _("%(used)s messages today, no quota") % messages,
        _("%(used)s of %(limit)s tokens this month") % tokens
        if standing.tokens_per_month
        else _("%(used)s tokens this month, no quota") % tokens,
    ]
    if standing.estimated_tokens:
        shown[1] += " " + _("(%(n)s of them estimated)") % {"n": f"{standing.estimated_tokens:,}"}
    resets = _("Days start at 00:00 %(zone)s; the next month at %(month)s.") % {
        "zone": str(period.zone),
        "month": period.resets_at(quotas.TOKENS).strftime("%Y-%m-%d"),
    }
    return format_html(
        '{}<div class="help">{}</div>',
        format_html_join("", "<div>{}</div>", ([s] for s in shown)),
        resets,
    )


# Both read the row as stored: a form sent back with errors holds values not in force.


def of_tenant(tenant: Tenant) -> SafeString:
    stored = Tenant.objects.get(pk=tenant.pk)
    [standing] = quotas.standings(stored, [quotas.of_tenant(stored)])
    return lines(stored, standing)


def of_bot(bot: Bot) -> SafeString:
    stored = Bot.objects.select_related("tenant").get(pk=bot.pk)
    [standing] = quotas.standings(stored.tenant, [quotas.of_bot(stored)])
    return lines(stored.tenant, standing)
