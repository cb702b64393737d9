"""WeCom's self-test checks: the app's secret, this server's IP on the app's trusted list,
the AgentId, and the callback keys the app and the smart robot share (spec §1.1, §1.2).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from common.selftest import Finding, failed, passed, skipped

from .. import checks
from ..base import DeliveryError
from .crypto import WxBizMsgCrypt

if TYPE_CHECKING:
    from .adapter import WeComAppAdapter
    from .client import WeComClient

TRUSTED_IP, TRUSTED_IP_LABEL = "trusted_ip", _("This server's IP is trusted by the app")
AGENT, AGENT_LABEL = "agent", _("AgentId belongs to the app")
KEYS, KEYS_LABEL = "callback_keys", _("Token and EncodingAESKey usable")
# "not allow to access from your ip": the caller's IP is not among the app's 企业可信IP.
# Apps made since 2022-06-20 must list it; WeCom then refuses every call but the token.
UNTRUSTED_IP = 60020
_FROM_IP = re.compile(r"from ip: ?([0-9A-Fa-f.:]+)")


def app_checks(adapter: WeComAppAdapter, timeout: float) -> list[Finding]:
    """credentials, trusted_ip, agent, callback_keys."""
    fix = _(
        "Copy the CorpID (我的企业 → 企业信息) and the app's Secret (应用管理 → the app) "
        "again: WeCom did not accept them together."
    )
    token, client = checks.credentials(lambda: adapter.client, timeout, fix)
    if client is None:
        found = [
            checks.needs_credentials(TRUSTED_IP, TRUSTED_IP_LABEL),
            checks.needs_credentials(AGENT, AGENT_LABEL),
        ]
    else:
        found = _agent_findings(client, str(adapter.credentials.get("agent_id", "")))
    return [
        token,
        *found,
        callback_keys(adapter.credentials, adapter.credentials.get("corp_id", "")),
    ]


def robot_checks(credentials: dict[str, Any]) -> list[Finding]:
    """A smart robot has no API credentials: only its callback keys are its own to check."""
    why = _(
        "A smart robot has no API credentials: it answers inside WeCom's callbacks, so "
        "there is no access token to ask for. What applies: the callback keys, the "
        "callback URL and the model."
    )
    return [skipped(checks.CREDENTIALS, checks.CREDENTIALS_LABEL, why), callback_keys(credentials)]


def _agent_findings(client: WeComClient, agent_id: str) -> list[Finding]:
    """trusted_ip and agent, from one harmless read (agent/get): WeCom answers 60020 to
    an IP that is not trusted, and names the app of a good AgentId."""
    agent_fix = _(
        "Copy the AgentId of the app whose Secret this is (应用管理 → the app), then test again."
    )
    reached = passed(TRUSTED_IP, TRUSTED_IP_LABEL, _("WeCom answered this server's call."))
    try:
        answer = client.call("GET", "/cgi-bin/agent/get", params={"agentid": agent_id})
    except DeliveryError as exc:
        if exc.code == UNTRUSTED_IP:
            waits = _("Runs once this server's IP is trusted.")
            return [_untrusted(exc), skipped(AGENT, AGENT_LABEL, waits)]
        if not exc.permanent:
            unknown = checks.refused(TRUSTED_IP, TRUSTED_IP_LABEL, exc, checks.UNREACHABLE_ACTION)
            return [unknown, skipped(AGENT, AGENT_LABEL, _("Runs once WeCom answers."))]
        # Any other refusal came past WeCom's IP check.
        return [reached, checks.refused(AGENT, AGENT_LABEL, exc, agent_fix)]
    name = answer.get("name") or agent_id
    return [
        reached,
        passed(AGENT, AGENT_LABEL, format_lazy(_("WeCom knows the app “{name}”."), name=name)),
    ]


def _untrusted(exc: DeliveryError) -> Finding:
    detail = format_lazy(_("WeCom refused this server's IP: {error}"), error=str(exc))
    match = _FROM_IP.search(str(exc))
    if match is None:
        action = _(
            "Add this server's public IP to the app's trusted IPs (应用管理 → the app → "
            "企业可信IP), then test again."
        )
    else:
        action = format_lazy(
            _(
                "Add {ip} to the app's trusted IPs (应用管理 → the app → 企业可信IP), then "
                "test again."
            ),
            ip=match.group(1),
        )
    return failed(TRUSTED_IP, TRUSTED_IP_LABEL, detail, action)


def callback_keys(credentials: dict[str, Any], receive_id: str = "") -> Finding:
    """Whether the Token and EncodingAESKey can open WeCom's envelope: with a wrong-sized
    key every callback fails, and WeCom's URL check with it."""
    fix = _(
        "Copy the Token and the EncodingAESKey (43 characters) again from where WeCom "
        "shows them (接收消息 → 设置API接收, or the smart robot's API 模式)."
    )
    if not credentials.get("token"):
        return failed(KEYS, KEYS_LABEL, _("The Token is not set."), fix)
    try:
        WxBizMsgCrypt(credentials["token"], credentials.get("encoding_aes_key", ""), receive_id)
    except ValueError:
        detail = _("The EncodingAESKey is not the 43 characters WeCom shows.")
        return failed(KEYS, KEYS_LABEL, detail, fix)
    return passed(KEYS, KEYS_LABEL, _("WeCom's callbacks can be checked and decrypted."))
