"""A bot's self-test against the fake platforms and the fake Ollama (real HTTP): each check
passing and failing, through each entry point (the `self_test` fixture runs every test
through the API, the admin button and `manage.py check_bot`)."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from django.core.cache import cache

from channels_im import selftest
from tests.channels_im.selftest_entries import DINGTALK, FEISHU, WECOM_BOT
from tests.factories import WECOM_CREDENTIALS, BotFactory
from tests.fakes.feishu_api import BOT_OPEN_ID

pytestmark = pytest.mark.django_db

P, F, S = "passed", "failed", "skipped"
CREDENTIALS = {
    "wecom": WECOM_CREDENTIALS,
    "feishu": FEISHU,
    "dingtalk": DINGTALK,
    "wecom_bot": WECOM_BOT,
    "api": {},
}
MODEL = {"model": P, "context_length": P}
HEALTHY = {
    "wecom": {
        "active": P,
        "callback_url": P,
        "credentials": P,
        "trusted_ip": P,
        "agent": P,
        "callback_keys": P,
        **MODEL,
    },
    "feishu": {
        "active": P,
        "callback_url": P,
        "credentials": P,
        "bot_open_id": P,
        "encryption": P,
        **MODEL,
    },
    "dingtalk": {
        "active": P,
        "callback_url": P,
        "credentials": P,
        "robot_code": P,
        "card_template": P,
        **MODEL,
    },
    "wecom_bot": {"active": P, "callback_url": P, "credentials": S, "callback_keys": P, **MODEL},
    "api": {"active": P, **MODEL},
}


@pytest.fixture
def world(settings, fake_platforms, fake_ollama, tenant_a):
    """Tenant A on the fake model, its callbacks on a public https address."""
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.save()
    return SimpleNamespace(platforms=fake_platforms, ollama=fake_ollama, tenant=tenant_a)


def bot_of(world, platform: str, **credentials):
    given = {**CREDENTIALS[platform], **credentials}
    return BotFactory(
        tenant=world.tenant,
        platform=platform,
        credentials={k: v for k, v in given.items() if v is not None},
    )


@pytest.mark.parametrize("platform", sorted(HEALTHY))
def test_it_passes_a_healthy_bot_in_order(world, self_test, platform):
    found = self_test(bot_of(world, platform))
    assert found == HEALTHY[platform]
    assert list(found) == list(HEALTHY[platform])


def test_it_says_what_each_check_found_and_what_to_do_in_both_languages(world):
    world.platforms.wecom_untrusted_ip = "203.0.113.7"
    bot = bot_of(world, "wecom")
    findings = {f["key"]: f for f in selftest.run(bot)}
    ip = findings["trusted_ip"]
    assert set(ip["label"]) == set(ip["action"]) == {"zh-hans", "en"}
    assert "203.0.113.7" in ip["action"]["en"] and "203.0.113.7" in ip["action"]["zh-hans"]
    assert ip["action"]["en"] != ip["action"]["zh-hans"]
    assert "60020" in ip["detail"]["en"]
    assert findings["agent"]["detail"]["en"] == "Runs once this server's IP is trusted."
    assert findings["credentials"]["action"] == {"zh-hans": "", "en": ""}


def test_it_fails_a_wecom_secret_and_skips_what_needs_a_token(world, self_test):
    world.platforms.bad_secrets = {WECOM_CREDENTIALS["secret"]}
    found = self_test(bot_of(world, "wecom"))
    assert found | {"credentials": F, "trusted_ip": S, "agent": S} == found
    assert found["model"] == P  # one failing check never hides the others


def test_it_fails_an_untrusted_ip_with_wecoms_60020(world, self_test):
    world.platforms.wecom_untrusted_ip = "203.0.113.7"
    found = self_test(bot_of(world, "wecom"))
    assert (found["credentials"], found["trusted_ip"], found["agent"]) == (P, F, S)


def test_it_fails_an_agent_id_of_another_app(world, self_test):
    world.platforms.wecom_agent_ids = {"1000099"}
    found = self_test(bot_of(world, "wecom"))
    assert (found["trusted_ip"], found["agent"]) == (P, F)


def test_it_fails_an_encoding_aes_key_wecom_cannot_use(world, self_test):
    found = self_test(bot_of(world, "wecom_bot", encoding_aes_key="too-short"))
    assert found["callback_keys"] == F and found["model"] == P


def test_it_learns_and_stores_the_feishu_bots_open_id(world):
    bot = bot_of(world, "feishu")
    assert "bot_open_id" not in bot.credentials
    selftest.run(bot)
    bot.refresh_from_db()
    assert bot.credentials["bot_open_id"] == BOT_OPEN_ID
    assert bot.credentials["app_secret"] == FEISHU["app_secret"]


def test_it_fails_a_stored_open_id_that_is_not_the_apps_bot(world, self_test):
    found = self_test(bot_of(world, "feishu", bot_open_id="ou_someone_else"))
    assert found["bot_open_id"] == F


def test_it_fails_feishu_without_its_encryption_settings(world, self_test):
    found = self_test(bot_of(world, "feishu", encrypt_key=None))
    assert found["encryption"] == F and found["credentials"] == P


def test_it_fails_a_feishu_secret(world, self_test):
    world.platforms.bad_secrets = {FEISHU["app_secret"]}
    found = self_test(bot_of(world, "feishu"))
    assert (found["credentials"], found["bot_open_id"], found["encryption"]) == (F, S, P)


def test_it_fails_a_dingtalk_secret(world, self_test):
    world.platforms.bad_secrets = {DINGTALK["app_secret"]}
    found = self_test(bot_of(world, "dingtalk"))
    assert (found["credentials"], found["robot_code"], found["card_template"]) == (F, S, S)


def test_it_fails_a_robot_code_dingtalk_does_not_know(world, self_test):
    world.platforms.dingtalk_robot_codes = {"dingotherrobot"}
    found = self_test(bot_of(world, "dingtalk"))
    assert (found["robot_code"], found["card_template"]) == (F, P)


def test_it_fails_a_card_template_dingtalk_does_not_know(world, self_test):
    world.platforms.dingtalk_card_templates = {"tpl-other"}
    found = self_test(bot_of(world, "dingtalk"))
    assert (found["robot_code"], found["card_template"]) == (P, F)


def test_it_skips_the_card_template_of_a_bot_without_one(world):
    bot = bot_of(world, "dingtalk", card_template_id=None)
    card = next(f for f in selftest.run(bot) if f["key"] == "card_template")
    assert card["status"] == S and "messages" in card["detail"]["en"]
    assert not world.platforms.received("/v1.0/card/instances")


def test_it_fails_a_model_the_endpoint_does_not_have(world, self_test):
    world.ollama.known_models = {"gemma:2b"}
    found = self_test(bot_of(world, "api"))
    assert found == {"active": P, "model": F, "context_length": S}


def test_it_fails_a_context_window_larger_than_the_models(world, self_test):
    world.ollama.context_length = 2048
    world.tenant.num_ctx = 8192
    world.tenant.save()
    found = self_test(bot_of(world, "wecom"))
    assert (found["model"], found["context_length"]) == (P, F)


def test_it_asks_an_openai_compatible_endpoint_for_its_models_only(world, self_test):
    world.tenant.model_endpoint = world.ollama.url + "/v1"
    world.tenant.save()
    found = self_test(bot_of(world, "api"))
    assert (found["model"], found["context_length"]) == (P, S)


def test_it_fails_a_model_endpoint_that_does_not_answer(world, self_test):
    with socket.socket() as closed:  # a port nothing listens on once it is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    world.tenant.model_endpoint = f"http://127.0.0.1:{port}"
    world.tenant.save()
    found = self_test(bot_of(world, "dingtalk"))
    assert (found["model"], found["context_length"]) == (F, S)
    assert found["credentials"] == found["robot_code"] == P


def test_it_fails_a_callback_url_the_platform_cannot_reach(world, self_test, settings):
    settings.PUBLIC_BASE_URL = "http://localhost:8000"
    found = self_test(bot_of(world, "feishu"))
    assert found["callback_url"] == F and found["credentials"] == P


def test_it_fails_a_bot_that_is_switched_off(world, self_test):
    bot = bot_of(world, "wecom")
    bot.is_active = False
    bot.save()
    assert self_test(bot)["active"] == F


def test_it_bounds_each_call_and_keeps_the_other_checks(world, monkeypatch):
    monkeypatch.setattr(selftest, "CALL_SECONDS", 0.2)
    world.platforms.slow_paths = {"/cgi-bin/gettoken": 1.0}
    found = {f["key"]: f for f in selftest.run(bot_of(world, "wecom"))}
    assert found["credentials"]["status"] == F
    assert "ReadTimeout" in found["credentials"]["detail"]["en"]
    assert found["model"]["status"] == P


def test_it_bounds_the_whole_test(world, monkeypatch):
    monkeypatch.setattr(selftest, "CALL_SECONDS", 5.0)
    monkeypatch.setattr(selftest, "TOTAL_SECONDS", 0.3)
    world.ollama.metadata_delay = 1.0
    found = {f["key"]: f["status"] for f in selftest.run(bot_of(world, "feishu"))}
    assert found["model"] == F and "context_length" not in found
    assert found["credentials"] == found["bot_open_id"] == P


def test_it_leaves_the_token_the_deliveries_use_alone(world):
    bot = bot_of(world, "wecom")
    shared = bot.adapter.client.tokens
    delivering = shared.get()
    selftest.run(bot)
    assert len(world.platforms.received("/cgi-bin/gettoken")) == 2  # a token of its own
    (read,) = world.platforms.received("/cgi-bin/agent/get")
    assert read.query["access_token"] != delivering
    assert cache.get(shared.key)[0] == delivering
    world.platforms.bad_secrets = {"mistyped"}
    mistyped = bot_of(world, "wecom", secret="mistyped")
    selftest.run(mistyped)
    assert cache.get(mistyped.adapter.client.tokens.key) is None


def test_a_group_that_raises_is_one_failed_finding_not_a_500(world, self_test, monkeypatch):
    from channels_im.platforms.wecom.adapter import WeComAppAdapter

    def broken(adapter, timeout):
        raise RuntimeError("a bug in a check")

    monkeypatch.setattr(WeComAppAdapter, "self_test", broken)
    found = self_test(bot_of(world, "wecom"))
    assert found == {"active": P, "callback_url": P, "platform": F, **MODEL}


def test_it_fails_an_endpoint_that_is_no_model_server(world, self_test):
    world.tenant.model_endpoint = world.platforms.url  # answers 404 to /api/tags
    world.tenant.save()
    found = self_test(bot_of(world, "api"))
    assert (found["model"], found["context_length"]) == (F, S)


def test_it_skips_the_context_check_when_the_model_does_not_tell(world):
    world.ollama.context_length = 0
    found = {f["key"]: f for f in selftest.run(bot_of(world, "api"))}
    assert found["context_length"]["status"] == S
    assert found["context_length"]["detail"]["en"] == (
        "The endpoint does not tell the model's context length."
    )
