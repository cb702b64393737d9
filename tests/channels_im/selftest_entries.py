"""The self-test's three entry points, each as a function of a bot that runs the test the
way a person would and returns what that person is told: {check key: status}.

The admin and the command are read back from the bot (what they keep); the API from its
answer, which must be what it keeps too.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from channels_im.models import Bot
from tests.factories import MembershipFactory

FEISHU = {
    "app_id": "cli_selftest0001",
    "app_secret": "feishu-app-secret-value",
    "verification_token": "FeishuVerifyToken0001",
    "encrypt_key": "FeishuEncryptKey0001",
}
DINGTALK = {
    "app_key": "dingselftest0001",
    "app_secret": "dingtalk-app-secret-value",
    "robot_code": "dingselftest0001",
    "card_template_id": "tpl-ai-card-0001.schema",
}
WECOM_BOT = {
    "token": "SpecToken2024",
    "encoding_aes_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
}

Statuses = dict[str, str]


def statuses(findings: list[dict]) -> Statuses:
    return {finding["key"]: finding["status"] for finding in findings}


def through_api(bot: Bot, key_for: Callable[..., str]) -> Statuses:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(bot.tenant, 'admin')}")
    response = client.post(f"/api/v1/bots/{bot.public_id}/test/")
    assert response.status_code == 200, response.content
    body = response.json()
    bot.refresh_from_db()
    assert body["checks"] == bot.self_test
    assert body["passed"] == bot.self_test_passed
    return statuses(body["checks"])


def through_admin(bot: Bot, key_for: Callable[..., str]) -> Statuses:
    client = Client()
    client.force_login(MembershipFactory(tenant=bot.tenant).user)
    response = client.post(reverse("admin:channels_im_bot_test", args=[bot.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:channels_im_bot_change", args=[bot.pk])
    bot.refresh_from_db()
    return statuses(bot.self_test)


def through_command(bot: Bot, key_for: Callable[..., str]) -> Statuses:
    try:
        call_command("check_bot", bot.name, "--tenant", bot.tenant.slug, stdout=io.StringIO())
        exit_status = 0
    except CommandError as exc:
        exit_status = exc.returncode
    bot.refresh_from_db()
    assert exit_status == (0 if bot.self_test_passed else 1)
    return statuses(bot.self_test)


ENTRIES = {"api": through_api, "admin": through_admin, "command": through_command}


@pytest.fixture(params=sorted(ENTRIES))
def self_test(request, key_for) -> Callable[[Bot], Statuses]:
    """Run a bot's self-test through one entry point (each test runs once per entry)."""
    entry = ENTRIES[request.param]
    return lambda bot: entry(bot, key_for)
