"""Config as code: `manage.py apply_config FILE` and the tenants.config module behind it."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

from channels_im.models import Bot
from channels_im.platforms import PLATFORMS, adapter_class
from channels_im.platforms.base import CredentialField, PlatformAdapter
from tenants.config import Change, ConfigError, apply_config, apply_file, load
from tenants.management.commands.apply_config import Command
from tenants.models import ApiKey, Tenant
from tests.factories import WECOM_CREDENTIALS, BotFactory

PUBLIC_ID = "0b6c7f4e-2f0a-4d3e-9a61-5f1d2c3b4a59"
OTHER_ID = "5d41402a-bc4b-4a76-b971-9d911017c592"
API_KEY = "crm-key-0123456789abcdef0123456789abcdef"
NEW_KEY = "crm-key-fedcba9876543210fedcba9876543210"
Tree = dict[str, Any]

ACME_TOML = f"""
[[tenants]]
slug = "acme"
name = "Acme"
model_endpoint = "http://localhost:11434"
model = "qwen2:1.5b"
context_max_rounds = 5
language = "en"

  [[tenants.bots]]
  name = "acme-wecom"
  platform = "wecom"
  public_id = "{PUBLIC_ID}"
  corp_id = "ww1234567890abcdef"
  agent_id = "1000002"
  secret = "wecom-app-secret-value"
  token = "SpecToken2024"
  encoding_aes_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"

  [[tenants.api_keys]]
  name = "crm"
  key = "{API_KEY}"

  [[tenants.api_keys]]
  name = "bi"
"""


def acme() -> Tree:
    """The tree of ACME_TOML: a tenant, a WeCom bot, a given and a generated API key."""
    bot = {"name": "acme-wecom", "platform": "wecom", "public_id": PUBLIC_ID}
    return {
        "tenants": [
            {
                "slug": "acme",
                "name": "Acme",
                "model_endpoint": "http://localhost:11434",
                "model": "qwen2:1.5b",
                "context_max_rounds": 5,
                "language": "en",
                "bots": [bot | WECOM_CREDENTIALS],
                "api_keys": [{"name": "crm", "key": API_KEY}, {"name": "bi"}],
            }
        ]
    }


def tenant(tree: Tree) -> Tree:
    return tree["tenants"][0]


def bot(tree: Tree) -> Tree:
    return tenant(tree)["bots"][0]


def api_key(tree: Tree) -> Tree:
    return tenant(tree)["api_keys"][0]


def by_label(changes: list[Change]) -> dict[tuple[str, str], Change]:
    return {(change.kind, change.label): change for change in changes}


def counts() -> tuple[int, int, int]:
    return Tenant.objects.count(), Bot.objects.count(), ApiKey.objects.count()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(path: Path) -> str:
    out = io.StringIO()
    call_command("apply_config", str(path), stdout=out)
    return out.getvalue()


# Creating, and applying again


def test_it_reads_toml_and_json_into_the_same_tree(tmp_path):
    toml_tree = load(write(tmp_path, "acme.toml", ACME_TOML))
    assert toml_tree == load(write(tmp_path, "acme.json", json.dumps(acme()))) == acme()


@pytest.mark.parametrize("name", ["acme.toml", "acme.json"])
def test_it_creates_tenants_bots_and_keys_from_a_file(db, tmp_path, name):
    text = ACME_TOML if name.endswith(".toml") else json.dumps(acme())
    changes = apply_file(write(tmp_path, name, text))

    assert [(c.action, c.kind, c.label) for c in changes] == [
        ("created", "tenant", "acme"),
        ("created", "bot", "acme/acme-wecom"),
        ("created", "api key", "acme/crm"),
        ("created", "api key", "acme/bi"),
    ]
    acme_row = Tenant.objects.get(slug="acme")
    assert (acme_row.name, acme_row.language, acme_row.context_max_rounds) == ("Acme", "en", 5)
    bot_row = Bot.objects.get(tenant=acme_row, name="acme-wecom")
    assert bot_row.public_id == UUID(PUBLIC_ID)
    assert bot_row.credentials == WECOM_CREDENTIALS
    assert ApiKey.for_key(API_KEY).name == "crm"


def test_it_changes_nothing_on_a_second_run(db):
    tree = acme()
    del bot(tree)["public_id"]  # a random one, which must survive the second run too
    first = by_label(apply_config(tree))
    rows = {model: list(model.objects.values()) for model in (Tenant, Bot, ApiKey)}

    second = apply_config(tree)

    assert {change.action for change in second} == {"unchanged"}
    assert not any(change.new_key for change in second)
    assert {model: list(model.objects.values()) for model in rows} == rows
    generated = first["api key", "acme/bi"].new_key
    assert ApiKey.for_key(generated).name == "bi"


def test_it_updates_only_what_changed(db):
    apply_config(acme())
    tree = acme()
    tenant(tree)["model"] = "gemma:2b"
    bot(tree)["system_prompt"] = "Be brief."

    changes = by_label(apply_config(tree))

    assert (changes["tenant", "acme"].action, changes["tenant", "acme"].fields) == (
        "updated",
        ("model",),
    )
    assert changes["bot", "acme/acme-wecom"].fields == ("system_prompt",)
    assert changes["api key", "acme/crm"].action == "unchanged"
    assert Tenant.objects.get().model == "gemma:2b"
    assert Bot.objects.get().system_prompt == "Be brief."


def test_it_merges_credentials_into_the_stored_ones(db):
    apply_config(acme())
    tree = acme()
    tenant(tree)["bots"] = [{"name": "acme-wecom", "platform": "wecom", "secret": "rotated"}]

    change = by_label(apply_config(tree))["bot", "acme/acme-wecom"]

    assert (change.action, change.fields) == ("updated", ("secret",))
    stored = Bot.objects.get()
    assert stored.credentials == WECOM_CREDENTIALS | {"secret": "rotated"}
    assert stored.public_id == UUID(PUBLIC_ID)


def test_it_moves_a_bot_to_the_public_id_in_the_file(db):
    apply_config(acme())
    tree = acme()
    bot(tree)["public_id"] = OTHER_ID

    change = by_label(apply_config(tree))["bot", "acme/acme-wecom"]

    assert change.fields == ("public_id",)
    assert change.callback_url.endswith(f"/callbacks/wecom/{OTHER_ID}/")
    assert Bot.objects.get().public_id == UUID(OTHER_ID)


def test_it_refuses_a_public_id_another_bot_holds(db):
    apply_config(acme())
    BotFactory(tenant=Tenant.objects.get(), name="other", public_id=UUID(OTHER_ID))
    tree = acme()
    bot(tree)["public_id"] = OTHER_ID

    with pytest.raises(ConfigError, match=r"^tenants\[0\]\.bots\[0\]\.public_id: "):
        apply_config(tree)
    assert Bot.objects.get(name="acme-wecom").public_id == UUID(PUBLIC_ID)


def test_it_sets_a_new_key_value_and_keeps_the_old_one_out(db):
    apply_config(acme())
    tree = acme()
    api_key(tree)["key"] = NEW_KEY

    change = by_label(apply_config(tree))["api key", "acme/crm"]

    assert (change.action, change.fields, change.new_key) == ("updated", ("key",), "")
    assert ApiKey.for_key(NEW_KEY).name == "crm"
    assert ApiKey.for_key(API_KEY) is None


def test_it_stores_secrets_encrypted(db):
    apply_config(acme())
    stored = Bot.objects.get()
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(Bot._meta.db_table)
        cursor.execute(f"SELECT credentials FROM {table} WHERE id = %s", [stored.pk])
        raw = cursor.fetchone()[0]

    assert raw.startswith("enc1:")
    for name in ("secret", "token", "encoding_aes_key"):
        assert WECOM_CREDENTIALS[name] not in raw
    assert stored.credentials == WECOM_CREDENTIALS
    assert API_KEY not in ApiKey.objects.get(name="crm").hashed_key


@pytest.mark.parametrize("written", [1000002, "1000002", " 1000002 ", "１０００００２"])
def test_it_takes_a_numeric_id_as_a_number_and_stores_its_digits(db, written):
    tree = acme()
    bot(tree)["agent_id"] = written

    apply_config(tree)

    assert Bot.objects.get().credentials["agent_id"] == "1000002"
    bot(tree)["agent_id"] = "1000002"
    assert {change.action for change in apply_config(tree)} == {"unchanged"}


@pytest.mark.parametrize(("written", "stored"), [(-1, "-1"), (300, "300"), ("5m", "5m")])
def test_it_takes_keep_alive_in_seconds_as_a_number(db, written, stored):
    tree = acme()
    tenant(tree)["keep_alive"] = written

    apply_config(tree)

    assert Tenant.objects.get().keep_alive == stored


# Bad input: the path of the bad field, and nothing written

Mutation = Callable[[Tree], object]


def on(part: Callable[[Tree], Any], **values: Any) -> Mutation:
    """A mutation of acme(): set `values` on the entry `part` picks out."""
    return lambda tree: part(tree).update(values)


def drop(part: Callable[[Tree], Any], key: str) -> Mutation:
    return lambda tree: part(tree).pop(key)


def add(kind: str, entry: Callable[[Tree], Tree]) -> Mutation:
    """Append an entry to the tenant's `kind` list; `entry(tree)` may copy one of them."""
    return lambda tree: tenant(tree)[kind].append(entry(tree))


T, B, K = "tenants[0]", "tenants[0].bots", "tenants[0].api_keys"
BAD_TREES = [
    ("unknown-key", on(tenant, colour="red"), f"{T}.colour: unknown key (known: slug, name"),
    ("no-tenants", drop(lambda t: t, "tenants"), "tenants: missing (required)"),
    ("no-slug", drop(tenant, "slug"), f"{T}.slug: missing (required)"),
    ("no-name", drop(tenant, "name"), f"{T}.name: "),
    ("entry-type", on(lambda t: t, tenants=["acme"]), f"{T}: expected a table, got a string"),
    ("list-type", on(tenant, bots={}), f"{T}.bots: expected a list, got a table"),
    ("wrong-type", on(tenant, num_ctx="4096"), f"{T}.num_ctx: expected an integer, got a string"),
    ("bool-for-int", on(tenant, num_ctx=True), f"{T}.num_ctx: expected an integer, got a boolean"),
    ("negative-limit", on(tenant, rate_limit_per_minute=-1), f"{T}.rate_limit_per_minute: "),
    ("bad-url", on(tenant, model_endpoint="ollama"), f"{T}.model_endpoint: "),
    ("bad-language", on(tenant, language="fr"), f"{T}.language: "),
    ("temperature-range", on(tenant, temperature=3), f"{T}.temperature: "),
    (
        "unknown-platform",
        on(bot, platform="wechat"),
        f'{B}[0].platform: unknown platform "wechat" (known: wecom',
    ),
    ("no-platform", drop(bot, "platform"), f"{B}[0].platform: missing (required)"),
    (
        "unknown-credential",
        on(bot, app_id="cli_a1b2"),
        f'{B}[0].app_id: not a bot field nor a "wecom" credential (credentials: corp_id, agent_id',
    ),
    ("credential-type", on(bot, corp_id=1), f"{B}[0].corp_id: expected a string, got an integer"),
    ("numeric-id-bool", on(bot, agent_id=True), f"{B}[0].agent_id: "),
    ("numeric-id-float", on(bot, agent_id=1000002.0), f"{B}[0].agent_id: "),
    ("numeric-id-text", on(bot, agent_id="abc"), f"{B}[0].agent_id: "),
    ("numeric-id-negative", on(bot, agent_id=-1), f"{B}[0].agent_id: "),
    ("numeric-id-sign", on(bot, agent_id="+1000002"), f"{B}[0].agent_id: "),
    ("numeric-id-huge", on(bot, agent_id=2**63), f"{B}[0].agent_id: "),
    ("keep-alive-bool", on(tenant, keep_alive=True), f"{T}.keep_alive: expected a string, got a b"),
    ("keep-alive-no-unit", on(tenant, keep_alive="1h30"), f"{T}.keep_alive: "),
    ("keep-alive-too-long", on(tenant, keep_alive=10**9), f"{T}.keep_alive: "),
    ("endpoint-query", on(tenant, model_endpoint="http://localhost/x?y="), f"{T}.model_endpoint: "),
    ("endpoint-host", on(tenant, model_endpoint="http://10.0.0.5:11434"), f"{T}.model_endpoint: "),
    ("num-ctx-huge", on(tenant, num_ctx=2**31 - 1), f"{T}.num_ctx: "),
    ("rate-limit-huge", on(tenant, rate_limit_per_minute=10**6), f"{T}.rate_limit_per_minute: "),
    ("missing-credential", drop(bot, "secret"), f'{B}[0].secret: required for a "wecom" bot'),
    ("empty-credential", on(bot, token=""), f'{B}[0].token: required for a "wecom" bot'),
    ("bad-uuid", on(bot, public_id="not-a-uuid"), f'{B}[0].public_id: not a UUID: "not-a-uuid"'),
    ("short-key", on(api_key, key="short"), f"{K}[0].key: an API key must be at least 32 char"),
    (
        "duplicate-slug",
        lambda t: t["tenants"].append({"slug": "acme"}),
        f'tenants[1].slug: duplicate slug "acme" (also at {T}.slug)',
    ),
    (
        "duplicate-bot",
        add("bots", lambda t: bot(t) | {"public_id": OTHER_ID}),
        f'{B}[1].name: duplicate bot name "acme-wecom" (also at {B}[0].name)',
    ),
    (
        "duplicate-public-id",
        add("bots", lambda t: bot(t) | {"name": "twin"}),
        f"{B}[1].public_id: duplicate public_id (also at {B}[0].public_id)",
    ),
    (
        "duplicate-key-name",
        add("api_keys", lambda t: {"name": "crm"}),
        f'{K}[2].name: duplicate API key name "crm" (also at {K}[0].name)',
    ),
    (
        "duplicate-key-value",
        add("api_keys", lambda t: {"name": "erp", "key": API_KEY}),
        f"{K}[2].key: duplicate API key prefix (also at {K}[0].key)",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [pytest.param(m, e, id=i) for i, m, e in BAD_TREES]
)
def test_it_names_the_bad_field_and_writes_nothing(db, mutate, expected):
    tree = acme()
    mutate(tree)

    with pytest.raises(ConfigError) as error:
        apply_config(tree)

    assert any(line.startswith(expected) for line in error.value.errors), error.value.errors
    assert counts() == (0, 0, 0)


def test_it_checks_every_entry_before_writing_any(db):
    apply_config(acme())
    tree = acme()
    tenant(tree)["model"] = "gemma:2b"  # valid, but must not be written either
    tree["tenants"].append({"slug": "globex", "name": "Globex", "bots": [{"name": "x"}]})

    with pytest.raises(ConfigError, match=r"tenants\[1\]\.bots\[0\]\.platform: missing"):
        apply_config(tree)

    assert Tenant.objects.get().model == "qwen2:1.5b"
    assert counts() == (1, 1, 2)


def test_it_reports_every_error_at_once(db):
    tree = acme()
    tenant(tree)["language"] = "fr"
    bot(tree)["platform"] = "wechat"
    api_key(tree)["key"] = "short"
    tree["tenants"].append({"slug": "globex", "colour": "red"})

    with pytest.raises(ConfigError) as error:
        apply_config(tree)

    assert [line.split(":")[0] for line in error.value.errors] == [
        "tenants[0].language",
        "tenants[0].bots[0].platform",
        "tenants[0].api_keys[0].key",
        "tenants[1].colour",
    ]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("acme.yaml", "tenants: []", 'acme.yaml: unsupported file type ".yaml"'),
        ("acme.toml", '[[tenants]\nslug = "acme"', "acme.toml: not valid TOML: "),
        ("acme.json", '{"tenants": [', "acme.json: not valid JSON: "),
        ("acme.toml", None, "acme.toml: cannot read: "),
    ],
)
def test_it_rejects_files_it_cannot_read(db, tmp_path, name, text, expected):
    path = write(tmp_path, name, text) if text is not None else tmp_path / name

    with pytest.raises(ConfigError) as error:
        apply_file(path)

    assert expected in str(error.value)
    assert counts() == (0, 0, 0)


# Credential names come from the platform registry


class FakeAdapter(PlatformAdapter):
    key = "fake"
    label = "Fake"
    credential_fields = (CredentialField("app_id", secret=False), CredentialField("bot_id", False))


@pytest.fixture
def fake_platform(monkeypatch):
    monkeypatch.setitem(PLATFORMS, "fake", f"{__name__}.FakeAdapter")
    adapter_class.cache_clear()
    yield
    adapter_class.cache_clear()


def fake_tree(**credentials: str) -> Tree:
    tree = acme()
    tenant(tree)["bots"] = [{"name": "acme-fake", "platform": "fake", **credentials}]
    return tree


def test_it_takes_credential_names_from_the_platform_registry(db, fake_platform):
    apply_config(fake_tree(app_id="cli_a1b2"))
    assert Bot.objects.get().credentials == {"app_id": "cli_a1b2"}

    with pytest.raises(ConfigError) as error:
        apply_config(fake_tree(app_id="cli_a1b2", secret="s"))
    assert error.value.errors == [
        'tenants[0].bots[0].secret: not a bot field nor a "fake" credential '
        "(credentials: app_id, bot_id)"
    ]


def test_it_refuses_to_move_a_bot_to_another_platform(db, fake_platform):
    apply_config(fake_tree(app_id="cli_a1b2"))

    tree = fake_tree(**WECOM_CREDENTIALS)
    bot(tree)["platform"] = "wecom"
    with pytest.raises(ConfigError, match=r'bots\[0\]\.platform: the bot exists on "fake"'):
        apply_config(tree)


# The command


def test_it_prints_one_line_per_object_and_a_generated_key_once(db, tmp_path):
    path = write(tmp_path, "acme.toml", ACME_TOML)

    first = run(path).splitlines()

    callback_url = Bot.objects.get().callback_url
    assert first[:3] == [
        "created tenant acme",
        f"created bot acme/acme-wecom  callback: {callback_url}",
        "created api key acme/crm",
    ]
    prefix = "created api key acme/bi: "
    assert first[3].startswith(prefix) and first[3].endswith("  (shown once)")
    assert ApiKey.for_key(first[3].removeprefix(prefix).split()[0]).name == "bi"
    assert run(path).splitlines() == [
        "unchanged tenant acme",
        f"unchanged bot acme/acme-wecom  callback: {callback_url}",
        "unchanged api key acme/crm",
        "unchanged api key acme/bi",
    ]


def test_it_never_prints_a_given_secret(db, tmp_path):
    output = run(write(tmp_path, "acme.json", json.dumps(acme())))
    tree = acme()
    bot(tree)["secret"] = "rotated-secret-value"
    output += run(write(tmp_path, "acme.json", json.dumps(tree)))

    assert "updated bot acme/acme-wecom (secret)" in output
    for secret in (API_KEY, "rotated-secret-value", *WECOM_CREDENTIALS.values()):
        assert secret not in output


def test_it_fails_with_a_command_error_and_writes_nothing(db, tmp_path):
    tree = acme()
    bot(tree)["platform"] = "wechat"
    path = write(tmp_path, "acme.json", json.dumps(tree))

    with pytest.raises(CommandError, match=r"bots\[0\]\.platform: unknown platform") as error:
        run(path)

    assert error.value.returncode == 1
    assert counts() == (0, 0, 0)


def test_it_exits_with_status_1_and_explains_on_stderr(db, tmp_path, monkeypatch, capsys):
    path = write(tmp_path, "acme.toml", ACME_TOML.replace('"wecom"', '"wechat"'))
    # run_from_argv closes every connection when done, which would end the test's transaction.
    monkeypatch.setattr(connections, "close_all", lambda: None)

    with pytest.raises(SystemExit) as exit_info:
        Command().run_from_argv(["manage.py", "apply_config", "--skip-checks", str(path)])

    assert exit_info.value.code == 1
    assert 'tenants[0].bots[0].platform: unknown platform "wechat"' in capsys.readouterr().err
    assert counts() == (0, 0, 0)
