"""DingTalk's self-test checks: the app's secret, the robot code, and the AI card template
if one is set (spec §2.2, §2.6). Each asks DingTalk with a call that changes nothing a
person sees.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

from common.selftest import Finding, passed, skipped

from .. import checks
from ..base import DeliveryError

if TYPE_CHECKING:
    from .adapter import DingTalkAdapter
    from .client import DingTalkClient

ROBOT, ROBOT_LABEL = "robot_code", _("Robot code accepted")
CARD, CARD_LABEL = "card_template", _("AI card template accepted")
# The query key the robot-code check asks about: one that names no message sent.
PLACEHOLDER_QUERY_KEY = "self-test"


def app_checks(adapter: DingTalkAdapter, timeout: float) -> list[Finding]:
    """credentials, robot_code, card_template."""
    fix = _("Copy the AppKey (Client ID) and AppSecret (Client Secret) again from 凭证与基础信息.")
    token, client = checks.credentials(lambda: adapter.client, timeout, fix)
    template = str(adapter.credentials.get("card_template_id") or "")
    if not template:
        card = skipped(CARD, CARD_LABEL, _("No card template set: answers go as messages."))
    elif client is None:
        card = checks.needs_credentials(CARD, CARD_LABEL)
    else:
        card = _card_template(client, template)
    if client is None:
        return [token, checks.needs_credentials(ROBOT, ROBOT_LABEL), card]
    robot_code = str(adapter.credentials.get("robot_code") or "")
    return [token, _robot_code(client, robot_code), card]


def _robot_code(client: DingTalkClient, robot_code: str) -> Finding:
    """Asks for the read status of a message the robot never sent: DingTalk refuses a
    robot it does not know (or one the app may not use) before it looks at the query key.
    So a refusal of the placeholder key passes the check and any other refusal fails it,
    showing DingTalk's words. (DingTalk does not publish these codes [unverified].)"""
    fix = _(
        "Copy the RobotCode from 机器人配置 (usually the same as the AppKey), and grant "
        "the app the robot's message permissions, then test again."
    )
    params = {"robotCode": robot_code, "processQueryKey": PLACEHOLDER_QUERY_KEY}
    try:
        client.call("GET", "/v1.0/robot/oToMessages/readStatus", params=params)
    except DeliveryError as exc:
        if not (exc.permanent and "processquerykey" in str(exc).lower()):
            return checks.refused(ROBOT, ROBOT_LABEL, exc, fix)
    return passed(ROBOT, ROBOT_LABEL, _("DingTalk knows the robot."))


def _card_template(client: DingTalkClient, template: str) -> Finding:
    """Creates a card from the template without delivering it anywhere: DingTalk
    refuses a template id it does not know."""
    card = {
        "cardTemplateId": template,
        "outTrackId": f"self-test-{uuid.uuid4().hex}",
        "cardData": {"cardParamMap": {}},
        "imRobotOpenSpaceModel": {"supportForward": False},
        "userIdType": 1,
    }
    try:
        client.call("POST", "/v1.0/card/instances", card)
    except DeliveryError as exc:
        fix = _(
            "Copy the template id from DingTalk's card platform (卡片平台); the template "
            "must be an AI card with a variable named content. Or empty card_template_id "
            "to answer with messages."
        )
        return checks.refused(CARD, CARD_LABEL, exc, fix)
    return passed(CARD, CARD_LABEL, _("DingTalk made a card from the template."))
