"""The bot admin: scoped per tenant, credentials per platform, secrets never rendered."""

import pytest
from django.urls import reverse
from django.utils import timezone

from channels_im.models import Bot
from tenants.encryption import mask
from tests.factories import WECOM_CREDENTIALS, BotFactory, MembershipFactory

pytestmark = pytest.mark.django_db

BOTS = reverse("admin:channels_im_bot_changelist")
ADD_BOT = reverse("admin:channels_im_bot_add")
SECRETS = ("secret", "token", "encoding_aes_key")


@pytest.fixture
def bot(tenant_a):
    return BotFactory(tenant=tenant_a, platform="wecom", name="helpdesk")


def bot_url(bot):
    return reverse("admin:channels_im_bot_change", args=[bot.pk])


def bot_form(bot, **credentials):
    """The change form as a tenant admin posts it: secret boxes left blank unless given."""
    data = {"name": bot.name, "is_active": "on", "system_prompt": bot.system_prompt}
    data.update(quota_messages_per_day=0, quota_tokens_per_month=0)
    data.update({"cred_corp_id": WECOM_CREDENTIALS["corp_id"], "cred_agent_id": "1000002"})
    data.update({f"cred_{name}": value for name, value in credentials.items()})
    return data


def test_it_lists_bots_with_their_callback_url(client, admin_a, bot):
    client.force_login(admin_a)
    response = client.get(BOTS)
    assert response.status_code == 200
    page = response.content.decode()
    assert "helpdesk" in page
    assert bot.callback_url in page


def test_it_shows_every_tenants_bots_to_the_superuser(client, superuser, bot, tenant_b):
    BotFactory(tenant=tenant_b, name="b-bot")
    client.force_login(superuser)
    page = client.get(BOTS).content.decode()
    assert "helpdesk" in page and "b-bot" in page
    assert client.get(bot_url(bot)).status_code == 200


def masked_bot_page(client, user, bot) -> str:
    """The bot's change page as `user` sees it, checked to show no stored secret."""
    client.force_login(user)
    response = client.get(bot_url(bot))
    assert response.status_code == 200
    page = response.content.decode()
    for name in SECRETS:
        assert WECOM_CREDENTIALS[name] not in page
    assert mask(WECOM_CREDENTIALS["secret"]) in page
    return page


def test_it_never_renders_stored_secrets(client, admin_a, bot):
    page = masked_bot_page(client, admin_a, bot)
    assert WECOM_CREDENTIALS["corp_id"] in page  # not a secret: shown for editing


def test_it_shows_the_callback_url_ready_to_copy(client, admin_a, bot):
    client.force_login(admin_a)
    page = client.get(bot_url(bot)).content.decode()
    assert f"<code>{bot.callback_url}</code>" in page
    assert bot.callback_url.startswith("http")
    assert str(bot.public_id) in bot.callback_url


def test_it_keeps_a_secret_left_blank_and_saves_a_new_one(client, admin_a, bot):
    client.force_login(admin_a)
    response = client.post(bot_url(bot), bot_form(bot, token="a-brand-new-token-value"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    bot.refresh_from_db()
    assert bot.credentials["secret"] == WECOM_CREDENTIALS["secret"]
    assert bot.credentials["encoding_aes_key"] == WECOM_CREDENTIALS["encoding_aes_key"]
    assert bot.credentials["token"] == "a-brand-new-token-value"


@pytest.mark.parametrize("typed", ["1000003", " 1000003 ", "１０００００３"])
def test_it_stores_a_numeric_id_as_plain_digits(client, admin_a, bot, typed):
    client.force_login(admin_a)
    response = client.post(bot_url(bot), bot_form(bot, agent_id=typed))
    assert response.status_code == 302, response.context["adminform"].form.errors
    bot.refresh_from_db()
    assert bot.credentials["agent_id"] == "1000003"


@pytest.mark.parametrize("typed", ["abc", "1000002.0", "-1", "AgentId 1000002"])
def test_it_refuses_a_numeric_id_that_is_not_a_whole_number(client, admin_a, bot, typed):
    client.force_login(admin_a)
    response = client.post(bot_url(bot), bot_form(bot, agent_id=typed))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["cred_agent_id"] and len(errors["cred_agent_id"]) == 1
    bot.refresh_from_db()
    assert bot.credentials["agent_id"] == WECOM_CREDENTIALS["agent_id"]


def test_it_requires_the_platforms_credentials(client, admin_a, tenant_a):
    bare = BotFactory(tenant=tenant_a, name="bare", credentials={})
    client.force_login(admin_a)
    response = client.post(bot_url(bare), bot_form(bare, secret="only-the-secret-value"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"cred_token", "cred_encoding_aes_key"}
    bare.refresh_from_db()
    assert bare.credentials == {}


def test_it_asks_for_credentials_right_after_adding_a_bot(client, admin_a, tenant_a):
    client.force_login(admin_a)
    form = client.get(ADD_BOT).content.decode()
    assert 'name="cred_secret"' not in form  # the platform is chosen first
    response = client.post(ADD_BOT, {"tenant": tenant_a.pk, "platform": "wecom", "name": "new"})
    created = Bot.objects.get(name="new")
    assert response.status_code == 302
    assert response.url == bot_url(created)
    page = client.get(response.url).content.decode()
    assert 'name="cred_secret"' in page
    assert 'type="password"' in page


def test_it_makes_bots_read_only_for_auditors(client, auditor_a, bot):
    masked_bot_page(client, auditor_a, bot)
    assert client.post(bot_url(bot), bot_form(bot, secret="auditor-secret")).status_code == 403
    assert client.get(ADD_BOT).status_code == 403


def test_it_filters_bots_with_a_last_error(client, admin_a, bot, tenant_a):
    BotFactory(tenant=tenant_a, name="healthy")
    bot.record_error("errcode 40014: invalid access_token")
    client.force_login(admin_a)
    page = client.get(BOTS, {"has_error": "yes"}).content.decode()
    assert "helpdesk" in page and "invalid access_token" in page
    assert "healthy" not in page


def test_it_clears_the_last_error(client, admin_a, bot):
    bot.record_error("HTTP 500")
    client.force_login(admin_a)
    action = {"action": "clear_last_error", "_selected_action": [bot.pk]}
    assert client.post(BOTS, action).status_code == 302
    bot.refresh_from_db()
    assert (bot.last_error, bot.last_error_at) == ("", None)


def test_it_clears_errors_only_where_the_user_is_tenant_admin(client, admin_a, tenant_b):
    MembershipFactory(user=admin_a, tenant=tenant_b, role="auditor")
    other = BotFactory(
        tenant=tenant_b, name="b-bot", last_error="boom", last_error_at=timezone.now()
    )
    client.force_login(admin_a)
    assert b"b-bot" in client.get(BOTS).content  # visible as auditor of B
    client.post(BOTS, {"action": "clear_last_error", "_selected_action": [other.pk]})
    other.refresh_from_db()
    assert other.last_error == "boom"


@pytest.mark.parametrize(
    ("base", "problem"),
    [
        ("http://localhost:8000", "names this machine itself"),
        ("https://127.0.0.1", "names this machine itself"),
        ("https://10.0.0.8", "private network address"),
        ("https://192.168.1.20:8443", "private network address"),
        ("https://bots", "host name has no domain"),
        ("http://bots.example.com", "plain http, not https"),
        ("https://bots.example.com", None),
    ],
)
def test_it_warns_when_the_platform_could_not_reach_the_callback_url(
    client, admin_a, bot, settings, base, problem
):
    settings.PUBLIC_BASE_URL = base
    client.force_login(admin_a)
    page = client.get(bot_url(bot), headers={"accept-language": "en"}).content.decode()
    assert f"{base}/callbacks/" in page
    if problem is None:
        assert "cannot call this address" not in page
    else:
        assert "cannot call this address" in page and problem in page
