"""Feishu's self-test checks: the app's secret, the bot's own open_id (which tells its
@mentions from others' in a group), and the event subscription's encryption settings
(spec §3.1–3.5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from common.selftest import PASSED, Finding, failed, passed

from .. import checks
from ..base import DeliveryError

if TYPE_CHECKING:
    from .adapter import FeishuAdapter
    from .client import FeishuClient

OPEN_ID, OPEN_ID_LABEL = "bot_open_id", _("The bot's open_id")
ENCRYPTION, ENCRYPTION_LABEL = "encryption", _("Event encryption settings present")
BOT_CAPABILITY = _(
    "Turn on the app's bot capability (应用能力 → 机器人) and publish a version of the app, "
    "then test again."
)


def app_checks(adapter: FeishuAdapter, timeout: float) -> list[Finding]:
    """credentials, bot_open_id, encryption."""
    fix = _(
        "Copy the App ID and App Secret again (凭证与基础信息); for a Lark app, set "
        "api_base to https://open.larksuite.com."
    )
    token, client = checks.credentials(lambda: adapter.client, timeout, fix)
    if client is None:
        open_id = checks.needs_credentials(OPEN_ID, OPEN_ID_LABEL)
    else:
        open_id = _open_id(client, adapter.bot_open_id)
    return [token, open_id, encryption(adapter.credentials)]


def _open_id(client: FeishuClient, stored: str) -> Finding:
    """Feishu's open_id of the bot (GET bot/v3/info), against the stored one; learned
    when none is stored."""
    try:
        told = client.bot_open_id()
    except DeliveryError as exc:
        return checks.refused(OPEN_ID, OPEN_ID_LABEL, exc, BOT_CAPABILITY)
    if not told:
        detail = _("Feishu's answer names no open_id: the app may have no bot capability.")
        return failed(OPEN_ID, OPEN_ID_LABEL, detail, BOT_CAPABILITY)
    if not stored:
        detail = format_lazy(_("{open_id}, learned from Feishu and stored."), open_id=told)
        return Finding(OPEN_ID, PASSED, OPEN_ID_LABEL, detail, learned={OPEN_ID: told})
    if stored != told:
        detail = format_lazy(
            _(
                "The stored bot_open_id {stored} is not this app's bot ({told}): group "
                "messages that @mention the bot are not taken for it."
            ),
            stored=stored,
            told=told,
        )
        action = _("Empty the bot_open_id credential: the next test stores Feishu's.")
        return failed(OPEN_ID, OPEN_ID_LABEL, detail, action)
    return passed(
        OPEN_ID, OPEN_ID_LABEL, format_lazy(_("{open_id}, as Feishu says."), open_id=told)
    )


def encryption(credentials: dict[str, Any]) -> Finding:
    """The Encrypt Key and Verification Token are set: events are encrypted with the one
    and carry the other, and a bot without them refuses every event."""
    missing = [name for name in ("encrypt_key", "verification_token") if not credentials.get(name)]
    if missing:
        detail = format_lazy(_("Not set: {names}."), names=", ".join(missing))
        action = _(
            "Copy the Encrypt Key and the Verification Token from 事件与回调 → 加密策略 "
            "(set an Encrypt Key there first if it shows none)."
        )
        return failed(ENCRYPTION, ENCRYPTION_LABEL, detail, action)
    detail = _("Events are decrypted with the Encrypt Key and checked by the Verification Token.")
    return passed(ENCRYPTION, ENCRYPTION_LABEL, detail)
