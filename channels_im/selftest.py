"""A bot's self-test: every check of its settings, one run for the admin's "Test this bot"
button, `manage.py check_bot` and `POST /api/v1/bots/{public_id}/test/` alike.

Two checks need nothing but the row (the bot is on; the platform can reach its callback
URL). Two groups call out: the platform's own checks (`PlatformAdapter.self_test`, in
each platform package's checks.py) and the model's (conversations/model_check.py). The
groups run at once, each request bounded by CALL_SECONDS and the whole by TOTAL_SECONDS:
a group unfinished by then is one failed finding, and never hides the others. The
findings and their time are kept on the bot.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.core.cache import cache
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from common.selftest import FAILED, Finding, failed, passed

from . import identity
from .models import Bot

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

logger = logging.getLogger(__name__)

# Each request to the platform or the model: a healthy API answers in well under this.
CALL_SECONDS = 5.0
# The whole test, which a person waits for in the admin or at the API.
TOTAL_SECONDS = 15.0
# One test of a bot per this many seconds: each asks for a new access token, and the
# platforms limit how often one may (WeCom's gettoken), which the bot's answers need too.
MIN_INTERVAL_SECONDS = 5

ACTIVE, ACTIVE_LABEL = "active", _("Bot and tenant switched on")
CALLBACK, CALLBACK_LABEL = "callback_url", _("Callback URL reachable from the internet")
Group = tuple["StrOrPromise", Callable[[], list[Finding]]]


class TooSoon(Exception):
    """The bot was tested less than MIN_INTERVAL_SECONDS ago: try again after
    `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"tested less than {retry_after} s ago")
        self.retry_after = retry_after


def run(bot: Bot) -> list[dict[str, Any]]:
    """Run every check of `bot` and keep the findings (`Finding.as_json`, in order) and
    the time on it (`self_test`, `self_tested_at`); return the findings. What the
    platform told about the bot (Feishu's open_id) is stored in its credentials.
    Raises TooSoon when the bot was tested moments ago."""
    # Imported here, not with the module: the admin imports this module as Django starts,
    # and the model client brings the metrics, whose directory a process sets up first.
    from conversations.model_check import model_checks

    _take_turn(bot)
    tenant = bot.tenant
    model = partial(model_checks, tenant.endpoint, tenant.model, tenant.num_ctx, CALL_SECONDS)
    groups: dict[str, Group] = {
        "platform": (_("Platform checks"), partial(bot.adapter.self_test, CALL_SECONDS)),
        "model": (_("Model checks"), model),
    }
    findings = [*local_checks(bot), *run_at_once(groups)]
    learned = {name: value for finding in findings for name, value in finding.learned.items()}
    if learned:
        identity.remember(bot.pk, learned)
    stored = [finding.as_json() for finding in findings]
    now = timezone.now()
    Bot.objects.filter(pk=bot.pk).update(self_test=stored, self_tested_at=now)
    bot.self_test, bot.self_tested_at = stored, now
    failures = sum(finding.status == FAILED for finding in findings)
    logger.info("bot %s self-tested: %d checks, %d failed", bot.pk, len(findings), failures)
    return stored


def _take_turn(bot: Bot) -> None:
    try:
        first = cache.add(f"im:self-test:{bot.pk}", 1, MIN_INTERVAL_SECONDS)
    except Exception:  # noqa: BLE001 - any cache backend's failure
        logger.warning("bot %s: the cache is down; self-test not rate-limited", bot.pk)
        return
    if not first:
        raise TooSoon(MIN_INTERVAL_SECONDS)


def local_checks(bot: Bot) -> list[Finding]:
    """active, and callback_url for a bot the platform calls."""
    if not bot.is_active:
        detail = _("The bot is switched off: its callbacks are answered 404 and not read.")
        found = failed(ACTIVE, ACTIVE_LABEL, detail, _("Tick “active” on the bot's page."))
    elif not bot.tenant.is_active:
        detail = _("The bot's tenant is switched off: none of its bots answer.")
        found = failed(ACTIVE, ACTIVE_LABEL, detail, _("Ask the operator to switch it on."))
    else:
        found = passed(ACTIVE, ACTIVE_LABEL)
    if not bot.adapter.takes_callbacks:
        return [found]
    return [found, callback_check(bot.callback_url)]


def callback_check(url: str) -> Finding:
    problem = unreachable_because(url)
    if problem is None:
        return passed(CALLBACK, CALLBACK_LABEL, url)
    detail = format_lazy(_("The platform cannot call {url}: {problem}."), url=url, problem=problem)
    action = _(
        "Set PUBLIC_BASE_URL to this server's public https address, e.g. "
        "https://bots.example.com, restart it, and paste the new callback URL into the "
        "platform's settings."
    )
    return failed(CALLBACK, CALLBACK_LABEL, detail, action)


def unreachable_because(url: str) -> StrOrPromise | None:
    """Why WeCom, DingTalk or Feishu could not call `url` from the internet, or None:
    plain http (Feishu and WeCom's robot want https), or a host only this network knows."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or host.endswith(".localhost") or (address and address.is_loopback):
        return _("it names this machine itself")
    if address is not None and (address.is_private or address.is_link_local):
        return _("it is a private network address")
    if address is None and "." not in host:
        return _("its host name has no domain")
    if parts.scheme != "https":
        return _("it is plain http, not https")
    return None


def run_at_once(groups: dict[str, Group]) -> list[Finding]:
    """Each group's findings, in the order given; the groups run in threads of their own
    and must not touch the database. A group unfinished after TOTAL_SECONDS, or one that
    raised, is one failed finding named after it."""
    pool = ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="self-test")
    futures = {key: pool.submit(checks) for key, (_label, checks) in groups.items()}
    wait(futures.values(), timeout=TOTAL_SECONDS)
    # A group still waiting on a slow answer ends on its own, bounded by CALL_SECONDS.
    pool.shutdown(wait=False, cancel_futures=True)
    found: list[Finding] = []
    for key, future in futures.items():
        label = groups[key][0]
        if not future.done():
            detail = format_lazy(_("No result within {seconds:g} seconds."), seconds=TOTAL_SECONDS)
            action = _(
                "Something on the way answers very slowly: check the network path to the "
                "platform's API and to the model endpoint, then test again."
            )
            found.append(failed(key, label, detail, action))
        elif (error := future.exception()) is not None:
            logger.error("self-test: the %s checks raised", key, exc_info=error)
            detail = format_lazy(
                _("The check itself failed ({error})."), error=type(error).__name__
            )
            found.append(
                failed(key, label, detail, _("Tell the operator: the server log has the details."))
            )
        else:
            found.extend(future.result())
    return found
