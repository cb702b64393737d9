"""Config as code: apply a TOML or JSON file of tenants, bots and API keys, idempotently.

The whole file is checked against the models before anything is written, so a typo never
leaves half a configuration behind. Entries are matched by natural keys (tenant slug; bot
and API key name within their tenant) and nothing missing from the file is deleted: the
file says what must exist, not everything that does.

Choices an operator should know:
- A bot's `public_id` follows the file: given on an existing bot with another value, the
  bot moves to the new id (so its callback URL changes) unless another bot holds it.
- Credentials are merged: keys the file leaves out keep their stored values, so secrets
  may live in a separate file or be typed into the admin.
- An API key without `key` is generated once, when the name is new; its value is in the
  report and never again.
"""

from __future__ import annotations

import json
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction

from channels_im.models import Bot
from channels_im.platforms import PLATFORMS, adapter_class
from channels_im.platforms.base import PlatformAdapter
from tenants import audit
from tenants.models import ApiKey, Tenant

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"

Spec = dict[str, tuple[type, ...]]  # key -> the types a file may use; (): checked elsewhere
M = TypeVar("M", Bot, ApiKey)


class ConfigError(Exception):
    """The file is invalid and nothing was written; each error names its field's path."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors

    @classmethod
    def at(cls, path: str, message: str) -> ConfigError:
        return cls([f"{path}: {message}"])


@dataclass(frozen=True)
class Change:
    """One line of the report. `new_key` is a just-generated API key: show it once."""

    action: str  # CREATED, UPDATED or UNCHANGED
    kind: str
    label: str
    fields: tuple[str, ...] = ()  # what an update changed: names only, never values
    new_key: str = ""
    callback_url: str = ""


@dataclass(frozen=True)
class _Step:
    obj: models.Model
    change: Change


def _file_types(field: Any) -> tuple[type, ...]:
    if isinstance(field, models.BooleanField):
        return (bool,)
    if isinstance(field, models.FloatField):
        return (int, float)
    if isinstance(field, models.IntegerField):
        return (int,)
    return (str,)  # text fields, and the UUID, which is parsed on its own


def _spec(model: type[models.Model], *names: str) -> Spec:
    """The types a file may use, read off the model so the two cannot drift apart."""
    return {name: _file_types(model._meta.get_field(name)) for name in names}


ROOT_SPEC: Spec = {"tenants": (list,)}
CHILDREN: Spec = {"bots": (list,), "api_keys": (list,)}
TENANT_FIELDS = (
    *("slug", "name", "is_active", "model_endpoint", "model", "system_prompt", "language"),
    *("rate_limit_per_minute", "user_rate_limit_per_minute", "session_timeout_seconds"),
    *("context_max_rounds", "num_ctx", "temperature", "keep_alive"),
    *("max_concurrency", "fallback_model_endpoint", "fallback_model"),
    *("retention_days", "retention_action", "legal_hold"),
    *("time_zone", "quota_messages_per_day", "quota_tokens_per_month"),
    *("user_quota_messages_per_day", "user_quota_tokens_per_month"),
)
BOT_FIELDS = (
    *("name", "platform", "public_id", "system_prompt", "shared_group_session", "is_active"),
    *("quota_messages_per_day", "quota_tokens_per_month"),
)
# keep_alive is text to the model (it may be "5m"), but `keep_alive = -1` means seconds.
TENANT_SPEC: Spec = _spec(Tenant, *TENANT_FIELDS) | {"keep_alive": (int, str)} | CHILDREN
BOT_SPEC: Spec = _spec(Bot, *BOT_FIELDS)
API_KEY_SPEC: Spec = _spec(ApiKey, "name", "is_active") | {"key": (str,), "scopes": (list,)}
# The file's `key` is stored as these two columns; errors on them are errors on `key`.
API_KEY_ALIASES = {"prefix": "key", "hashed_key": "key"}

TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}


def _describe(value: Any) -> str:
    return "null" if value is None else TYPE_NAMES.get(type(value), type(value).__name__)


def _type_error(value: Any, types: tuple[type, ...]) -> str | None:
    # bool is an int to Python, but `true` is not a rate limit.
    if isinstance(value, types) and (bool in types or not isinstance(value, bool)):
        return None
    return f"expected {TYPE_NAMES[types[-1]]}, got {_describe(value)}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path and key else path or key


def _check_table(
    data: Mapping[str, Any],
    path: str,
    spec: Spec,
    required: Iterable[str] = (),
    unknown: str = "",
) -> None:
    """Unknown keys, missing keys and wrong types, all reported at once."""
    unknown = unknown or f"unknown key (known: {', '.join(spec)})"
    errors = [f"{_join(path, key)}: {unknown}" for key in data if key not in spec]
    errors += [f"{_join(path, k)}: missing (required)" for k in required if k not in data]
    errors += [
        f"{_join(path, key)}: {message}"
        for key, value in data.items()
        if spec.get(key) and (message := _type_error(value, spec[key]))
    ]
    if errors:
        raise ConfigError(errors)


def _collect(tasks: Iterable[Callable[[], None]]) -> None:
    """Run every check even after one fails, so one run reports every mistake."""
    errors: list[str] = []
    for task in tasks:
        try:
            task()
        except ConfigError as exc:
            errors += exc.errors
    if errors:
        raise ConfigError(errors)


PlanEntry = Callable[[dict[str, Any], str], None]


def _entry(plan_entry: PlanEntry, item: Any, path: str) -> None:
    if message := _type_error(item, (dict,)):
        raise ConfigError.at(path, message)
    plan_entry(item, path)


def _each(items: list[Any], path: str, plan_entry: PlanEntry) -> None:
    _collect(partial(_entry, plan_entry, item, f"{path}[{i}]") for i, item in enumerate(items))


def _assign(obj: models.Model, values: Mapping[str, Any]) -> list[str]:
    """Set the given fields; return the names whose value actually changes."""
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    for name, value in values.items():
        setattr(obj, name, value)
    return changed


def _clean(
    obj: models.Model,
    path: str,
    exclude: Iterable[str] = (),
    aliases: Mapping[str, str] | None = None,
) -> None:
    """The model's own validation (URLs, choices, limits, uniqueness), as path errors."""
    aliases = {NON_FIELD_ERRORS: "", **(aliases or {})}
    try:
        obj.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        errors = [
            f"{_join(path, aliases.get(name, name))}: {message}"
            for name, messages in exc.message_dict.items()
            for message in messages
        ]
        raise ConfigError(errors) from exc


def _existing(model: type[M], tenant: Tenant, name: str) -> M | None:
    """The row this entry describes; a tenant still to be created has none."""
    if tenant.pk is None:
        return None
    return model._default_manager.filter(tenant=tenant, name=name).first()


def _adapter(platform: str, path: str) -> type[PlatformAdapter]:
    if platform not in PLATFORMS:
        known = ", ".join(PLATFORMS)
        raise ConfigError.at(path, f'unknown platform "{platform}" (known: {known})')
    return adapter_class(platform)


def _credentials(platform: str, given: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A bot's keys that are not model fields, which must be credentials of its platform,
    as stored: a numeric one (an AgentId) may be written as a number, and is kept as digits.
    """
    fields = {f.name: f for f in _adapter(platform, f"{path}.platform").credential_fields}
    hint = f'not a bot field nor a "{platform}" credential (credentials: {", ".join(fields)})'
    # A numeric credential's own check says what is wrong with a bad one.
    spec: Spec = {name: () if f.numeric else (str,) for name, f in fields.items()}
    _check_table(given, path, spec, unknown=hint)
    cleaned, errors = dict(given), []
    for name, value in given.items():
        try:
            cleaned[name] = fields[name].clean(value)
        except ValidationError as exc:
            errors += [f"{_join(path, name)}: {message}" for message in exc.messages]
    if errors:
        raise ConfigError(errors)
    return cleaned


def _uuid(value: str, path: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ConfigError.at(path, f'not a UUID: "{value}"') from exc


class _Planner:
    """Turns the tree into unsaved model instances, each checked, in saving order."""

    def __init__(self) -> None:
        self.steps: list[_Step] = []
        self.seen: dict[tuple[Any, ...], str] = {}

    def _claim(self, key: tuple[Any, ...], what: str, path: str) -> None:
        # Two entries for one object would silently overwrite each other.
        other = self.seen.setdefault(key, path)
        if other != path:
            raise ConfigError.at(path, f"duplicate {what} (also at {other})")

    def _add(
        self, obj: models.Model, kind: str, label: str, changed: list[str], **extra: str
    ) -> None:
        action = CREATED if obj.pk is None else UPDATED if changed else UNCHANGED
        fields = tuple(changed) if action == UPDATED else ()
        self.steps.append(_Step(obj, Change(action, kind, label, fields, **extra)))

    def tenant(self, data: dict[str, Any], path: str) -> None:
        _check_table(data, path, TENANT_SPEC, required=("slug",))
        slug = data["slug"]
        self._claim(("tenant", slug), f'slug "{slug}"', f"{path}.slug")
        tenant = Tenant.objects.filter(slug=slug).first() or Tenant()
        values = {k: v for k, v in data.items() if k not in CHILDREN}
        if isinstance(values.get("keep_alive"), int):
            values["keep_alive"] = str(values["keep_alive"])
        changed = _assign(tenant, values)

        def check_tenant() -> None:
            _clean(tenant, path)
            self._add(tenant, "tenant", slug, changed)

        children = (
            partial(_each, data.get(key, []), f"{path}.{key}", partial(plan_entry, tenant))
            for key, plan_entry in (("bots", self.bot), ("api_keys", self.api_key))
        )
        # The children are checked even if the tenant has errors, to report those too.
        _collect([check_tenant, *children])

    def bot(self, tenant: Tenant, data: dict[str, Any], path: str) -> None:
        fields = {k: v for k, v in data.items() if k in BOT_SPEC}
        given = {k: v for k, v in data.items() if k not in BOT_SPEC}
        _check_table(fields, path, BOT_SPEC, required=("name", "platform"))
        given = _credentials(fields["platform"], given, path)
        name = fields["name"]
        self._claim(("bot", tenant.slug, name), f'bot name "{name}"', f"{path}.name")
        if "public_id" in fields:
            fields["public_id"] = _uuid(fields["public_id"], f"{path}.public_id")
            self._claim(("public_id", fields["public_id"]), "public_id", f"{path}.public_id")
        bot = _existing(Bot, tenant, name) or Bot(tenant=tenant)
        if bot.pk is not None and bot.platform != fields["platform"]:
            message = f'the bot exists on "{bot.platform}": to move it, give it a new name'
            raise ConfigError.at(f"{path}.platform", message)
        changed = _assign(bot, fields) + self._merge_credentials(bot, given, path)
        _clean(bot, path, exclude=["tenant"])
        self._add(bot, "bot", f"{tenant.slug}/{name}", changed, callback_url=bot.callback_url)

    @staticmethod
    def _merge_credentials(bot: Bot, given: dict[str, Any], path: str) -> list[str]:
        """Stored credentials the file leaves out are kept; a new bot needs them all."""
        merged = {**bot.credentials, **given}
        adapter = adapter_class(bot.platform)
        # An existing bot is only checked for what the file sets (to blank, say).
        missing = [
            name for name in adapter.missing_credentials(merged) if bot.pk is None or name in given
        ]
        if missing:
            need = f'required for a "{bot.platform}" bot, and not empty'
            raise ConfigError([f"{_join(path, name)}: {need}" for name in missing])
        changed = [name for name, value in given.items() if bot.credentials.get(name) != value]
        bot.credentials = merged
        return changed

    def api_key(self, tenant: Tenant, data: dict[str, Any], path: str) -> None:
        _check_table(data, path, API_KEY_SPEC, required=("name",))
        name = data["name"]
        self._claim(("api key", tenant.slug, name), f'API key name "{name}"', f"{path}.name")
        api_key = _existing(ApiKey, tenant, name) or ApiKey(tenant=tenant)
        changed = _assign(api_key, {k: v for k, v in data.items() if k != "key"})
        raw, new_key = data.get("key"), ""
        if raw is None and api_key.pk is None:
            raw = new_key = ApiKey.generate()
        if raw is not None and not (api_key.pk is not None and api_key.matches(raw)):
            self._set_key(api_key, raw, f"{path}.key")
            changed.append("key")
        _clean(api_key, path, exclude=["tenant"], aliases=API_KEY_ALIASES)
        self._add(api_key, "api key", f"{tenant.slug}/{name}", changed, new_key=new_key)

    def _set_key(self, api_key: ApiKey, raw: str, path: str) -> None:
        try:
            api_key.set_key(raw)
        except ValueError as exc:
            raise ConfigError.at(path, str(exc)) from exc
        # The database checks prefixes against saved keys; this catches two in one file.
        self._claim(("prefix", api_key.prefix), "API key prefix", path)


def _read_toml(raw: bytes) -> Any:
    return tomllib.loads(raw.decode("utf-8"))


PARSERS: dict[str, Callable[[bytes], Any]] = {".toml": _read_toml, ".json": json.loads}


def load(path: Path) -> Any:
    """The file's tree, parsed by its extension: a misnamed file fails before it is read."""
    parse = PARSERS.get(path.suffix.lower())
    if parse is None:
        message = f'unsupported file type "{path.suffix}" (use .toml or .json)'
        raise ConfigError.at(str(path), message)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError.at(str(path), f"cannot read: {exc.strerror}") from exc
    try:
        return parse(raw)
    except ValueError as exc:  # TOML, JSON and UTF-8 decoding errors alike
        raise ConfigError.at(str(path), f"not valid {path.suffix[1:].upper()}: {exc}") from exc


def plan(tree: Any) -> list[_Step]:
    """Check the whole tree against the file schema and the models; write nothing."""
    if message := _type_error(tree, (dict,)):
        raise ConfigError.at("top level", message)
    _check_table(tree, "", ROOT_SPEC, required=("tenants",))
    planner = _Planner()
    _each(tree["tenants"], "tenants", planner.tenant)
    return planner.steps


def apply_config(tree: Any) -> list[Change]:
    """Validate everything, then write in one transaction; the report lists every entry,
    and the audit trail records each write (actor "system: apply_config")."""
    actor = audit.Actor.system("apply_config")
    with transaction.atomic():
        steps = plan(tree)
        for step in steps:
            if step.change.action != UNCHANGED:
                before = audit.stored(step.obj)
                step.obj.save()
                audit.saved(step.obj, before, actor=actor)
    return [step.change for step in steps]


def apply_file(path: Path) -> list[Change]:
    return apply_config(load(path))
