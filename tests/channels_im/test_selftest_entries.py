"""The self-test's entry points, each with what only it does: the admin's button (CSRF,
who may press it, the list's badge, the bot's page), `manage.py check_bot` (finding the
bot, the language, the exit status) and the API (the bot object, the schema, 429)."""

from __future__ import annotations

import io

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from channels_im import selftest
from channels_im.platforms.wecom.checks import TRUSTED_IP_LABEL
from common.selftest import in_every_language
from tests.factories import BotFactory

pytestmark = pytest.mark.django_db

BOTS = reverse("admin:channels_im_bot_changelist")


@pytest.fixture
def bot(settings, fake_platforms, fake_ollama, tenant_a):
    """A healthy WeCom app bot of tenant A; the admin speaks English."""
    settings.LANGUAGE_CODE = "en"
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.save()
    return BotFactory(tenant=tenant_a, platform="wecom", name="helpdesk")


def button_url(bot) -> str:
    return reverse("admin:channels_im_bot_test", args=[bot.pk])


def change_url(bot) -> str:
    return reverse("admin:channels_im_bot_change", args=[bot.pk])


def called_out(fake_platforms) -> bool:
    return bool(fake_platforms.received("/cgi-bin/gettoken"))


# --- the admin -------------------------------------------------------------------------


def test_the_button_posts_with_the_csrf_token_and_the_page_shows_the_findings(bot, admin_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_a)
    page = client.get(change_url(bot))
    assert "self-test-form" in page.content.decode() and "Test this bot" in page.content.decode()
    assert "Not tested yet" in page.content.decode()
    assert client.post(button_url(bot)).status_code == 403  # no CSRF token
    token = page.cookies["csrftoken"].value
    response = client.post(button_url(bot), {"csrfmiddlewaretoken": token}, follow=True)
    page = response.content.decode()
    assert "Self-test of “helpdesk”: 8 passed, 0 failed, 0 skipped." in page
    assert "AgentId belongs to the app" in page and "WeCom knows the app “Helpdesk”." in page
    assert 'class="self-test-badge self-test-passed"' in page
    assert "channels_im/selftest.css" in page


def test_a_failed_check_is_a_warning_with_what_to_do(bot, admin_a, fake_platforms):
    fake_platforms.wecom_untrusted_ip = "203.0.113.7"
    client = Client()
    client.force_login(admin_a)
    response = client.post(button_url(bot), follow=True)
    page = response.content.decode()
    assert "6 passed, 1 failed, 1 skipped" in page
    assert 'class="warning"' in page
    assert "Add 203.0.113.7 to the app" in page


def test_the_bot_list_shows_a_badge_and_the_time(bot, admin_a, tenant_a, fake_platforms, settings):
    untested = BotFactory(tenant=tenant_a, platform="wecom", name="untested")
    selftest.run(bot)
    client = Client()
    client.force_login(admin_a)
    rows = client.get(BOTS).context["cl"].result_list
    page = client.get(BOTS).content.decode()
    assert 'self-test-passed">passed</span>' in page
    assert {row.name: row.self_test_passed for row in rows} == {"helpdesk": True, "untested": None}
    fake_platforms.bad_secrets = {bot.credentials["secret"]}
    bot.refresh_from_db()
    cache_free(bot)
    selftest.run(bot)
    assert 'self-test-failed">failed</span>' in client.get(BOTS).content.decode()
    settings.LANGUAGE_CODE = "zh-hans"
    assert 'self-test-failed">未通过</span>' in client.get(BOTS).content.decode()
    assert untested.self_tested_at is None


def cache_free(bot) -> None:
    """Let the bot be tested again at once."""
    cache.delete(f"im:self-test:{bot.pk}")


def test_an_auditor_may_not_run_it(bot, auditor_a, fake_platforms):
    client = Client()
    client.force_login(auditor_a)
    assert "self-test-form" not in client.get(change_url(bot)).content.decode()
    assert client.post(button_url(bot)).status_code == 403
    bot.refresh_from_db()
    assert bot.self_tested_at is None and not called_out(fake_platforms)


def test_another_tenants_bot_is_not_found(bot, outsider, fake_platforms):
    client = Client()
    client.force_login(outsider)
    assert client.post(button_url(bot)).status_code == 404
    assert client.post(reverse("admin:channels_im_bot_test", args=[10**9])).status_code == 404
    bot.refresh_from_db()
    assert bot.self_tested_at is None and not called_out(fake_platforms)


def test_a_get_runs_nothing(bot, admin_a, fake_platforms):
    client = Client()
    client.force_login(admin_a)
    assert client.get(button_url(bot)).status_code == 405
    assert not called_out(fake_platforms)


def test_a_second_press_at_once_waits(bot, admin_a, fake_platforms):
    client = Client()
    client.force_login(admin_a)
    client.post(button_url(bot))
    response = client.post(button_url(bot), follow=True)
    assert "was tested moments ago" in response.content.decode()
    assert len(fake_platforms.received("/cgi-bin/gettoken")) == 1


# --- manage.py check_bot ---------------------------------------------------------------


def check_bot(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("check_bot", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def test_the_command_prints_each_check_in_the_language_asked(bot):
    status, out = check_bot("helpdesk", "--language", "en")
    assert status == 0
    assert "[passed] Credentials accepted: The platform gave an access token." in out
    assert "helpdesk: no check failed (8 checks)." in out
    cache_free(bot)
    status, out = check_bot("helpdesk", "--language", "zh-hans")
    assert "Credentials accepted" not in out


def test_the_command_exits_1_with_what_to_do(bot, fake_platforms):
    fake_platforms.bad_secrets = {bot.credentials["secret"]}
    status, out = check_bot("helpdesk", "--language", "en")
    assert status == 1
    assert (
        "[failed] Credentials accepted: The platform refused: WeCom /cgi-bin/gettoken: code 40001"
        in out
    )
    assert "\n    → Copy the CorpID" in out
    assert "1 of 8 checks failed." in out


def test_the_command_needs_the_tenant_of_a_name_two_tenants_use(bot, tenant_b):
    BotFactory(tenant=tenant_b, name="helpdesk")
    status, out = check_bot("helpdesk")
    assert status == 1 and "tenant-a, tenant-b" in out and "--tenant" in out
    assert check_bot("helpdesk", "--tenant", "tenant-a")[0] == 0
    assert check_bot("nobody")[0] == 1


# --- the API ---------------------------------------------------------------------------


@pytest.fixture
def api(key_for, tenant_a):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(tenant_a, 'admin')}")
    return client


def test_the_bot_object_carries_the_last_test(bot, api):
    assert api.get(f"/api/v1/bots/{bot.public_id}/").json()["self_test"] is None
    result = api.post(f"/api/v1/bots/{bot.public_id}/test/").json()
    assert result["passed"] is True and len(result["checks"]) == 8
    assert result["checks"][0]["label"] == {
        "zh-hans": result["checks"][0]["label"]["zh-hans"],
        "en": "Bot and tenant switched on",
    }
    listed = api.get("/api/v1/bots/").json()
    shown = next(b for b in listed if b["public_id"] == str(bot.public_id))
    assert shown["self_test"] == result


def test_an_immediate_second_test_is_429(bot, api, fake_platforms):
    api.post(f"/api/v1/bots/{bot.public_id}/test/")
    response = api.post(f"/api/v1/bots/{bot.public_id}/test/")
    assert response.status_code == 429 and response["Retry-After"] == str(
        selftest.MIN_INTERVAL_SECONDS
    )
    assert response.json()["code"] == "throttled"
    assert len(fake_platforms.received("/cgi-bin/gettoken")) == 1


def test_another_tenants_key_gets_404_and_no_test(bot, key_for, tenant_b, fake_platforms):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(tenant_b, 'admin')}")
    assert client.post(f"/api/v1/bots/{bot.public_id}/test/").status_code == 404
    assert not called_out(fake_platforms)


def test_the_schema_documents_the_test_with_a_bilingual_example(client):
    document = client.get("/api/v1/schema/?format=json").json()
    operation = document["paths"]["/api/v1/bots/{public_id}/test/"]["post"]
    schema = document["components"]["schemas"]["SelfTest"]
    assert set(schema["properties"]) == {"passed", "tested_at", "checks"}
    examples = operation["responses"]["200"]["content"]["application/json"]["examples"]
    (example,) = examples.values()
    check = example["value"]["checks"][1]
    assert check["label"] == in_every_language(TRUSTED_IP_LABEL)  # the example is true
    assert set(check["action"]) == {"zh-hans", "en"}
    assert "可信" in check["action"]["zh-hans"] and "trusted" in check["action"]["en"]
