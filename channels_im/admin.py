"""Bots in the admin: credentials edited field by field, secrets never sent back to the browser.

A bot is added with tenant, platform and name only; the change view that follows asks
for that platform's credentials, declared by its adapter's `credential_fields`.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from tenants.admin import TenantScopedAdmin
from tenants.encryption import mask

from .models import Bot
from .platforms import adapter_class
from .platforms.base import CredentialField
from .selftest import unreachable_because
from .selftest_admin import SelfTestAdmin

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

CREDENTIAL_PREFIX = "cred_"


class BotCredentialsForm(forms.ModelForm):
    """Base of the per-platform forms; `credentials_form()` declares the `cred_*` fields."""

    credential_fields: tuple[CredentialField, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.credentials or {}
        for spec in self.credential_fields:
            field = self.fields[CREDENTIAL_PREFIX + spec.name]
            value = str(stored.get(spec.name) or "")
            if not spec.secret:
                field.initial = value
            elif value:
                # PasswordInput never renders the value; the mask says one is stored.
                field.widget.attrs["placeholder"] = mask(value)
                status = _("A value is stored (%(mask)s). Leave blank to keep it.") % {
                    "mask": mask(value)
                }
                field.help_text = join_help(spec.hint, status)
            else:
                field.help_text = join_help(spec.hint, _("Not set yet."))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        credentials = dict(self.instance.credentials or {})
        for spec in self.credential_fields:
            field = CREDENTIAL_PREFIX + spec.name
            try:
                value = spec.clean(cleaned.get(field) or "")
            except ValidationError as exc:
                self.add_error(field, exc)
                continue
            if value:
                credentials[spec.name] = value
            elif not spec.secret:
                # A non-secret is shown in full, so emptying the box means removing it.
                credentials.pop(spec.name, None)
        adapter = adapter_class(self.instance.platform)
        for name in adapter.missing_credentials(credentials):
            if not self.has_error(CREDENTIAL_PREFIX + name):
                self.add_error(CREDENTIAL_PREFIX + name, _("This credential is required."))
        self.credentials = credentials
        return cleaned

    def save(self, commit: bool = True) -> Bot:
        self.instance.credentials = self.credentials
        return super().save(commit)


def join_help(*parts: StrOrPromise) -> str:
    return " · ".join(str(part) for part in parts if part)


@cache
def credentials_form(platform: str) -> type[BotCredentialsForm]:
    """The change form of a bot on this platform: one `cred_<name>` field per credential."""
    specs = adapter_class(platform).credential_fields
    fields: dict[str, Any] = {
        CREDENTIAL_PREFIX + spec.name: forms.CharField(
            label=spec.name,
            help_text=spec.hint,
            required=False,  # required-ness is checked on the merged dict in clean()
            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
            if spec.secret
            else forms.TextInput,
        )
        for spec in specs
    }
    attrs = {"credential_fields": specs, **fields}
    return type(f"{platform.title()}BotForm", (BotCredentialsForm,), attrs)


class HasLastErrorFilter(admin.SimpleListFilter):
    title = _("has last error")
    parameter_name = "has_error"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Any:
        return (("yes", _("Yes")), ("no", _("No")))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Bot]) -> QuerySet[Bot]:
        if self.value() == "yes":
            return queryset.exclude(last_error="")
        if self.value() == "no":
            return queryset.filter(last_error="")
        return queryset


@admin.register(Bot)
class BotAdmin(SelfTestAdmin, TenantScopedAdmin):
    list_display = (
        "name",
        "tenant",
        "platform",
        "is_active",
        "self_test_badge",
        "callback_url_code",
        "last_success_at",
        "short_last_error",
        "last_error_at",
    )
    list_filter = (
        "platform",
        "is_active",
        HasLastErrorFilter,
        ("tenant", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("name",)
    list_select_related = ("tenant",)
    readonly_fields = (
        "callback_url_field",
        "credentials_overview",
        "public_id",
        "last_success_at",
        "last_error",
        "last_error_at",
        "self_test_report",
        "created_at",
    )
    actions = ("clear_last_error",)

    @admin.display(description=_("callback URL"))
    def callback_url_code(self, bot: Bot) -> str:
        return format_html("<code>{}</code>", bot.callback_url)

    @admin.display(description=_("callback URL"))
    def callback_url_field(self, bot: Bot) -> str:
        help_text = format_html(
            '<code>{}</code><div class="help">{}</div>',
            bot.callback_url,
            _("Paste this URL into the platform's callback (event subscription) settings."),
        )
        if (problem := unreachable_because(bot.callback_url)) is None:
            return help_text
        warning = _(
            "The platform cannot call this address (%(problem)s). Set PUBLIC_BASE_URL to "
            "this server's public https address, e.g. https://bots.example.com."
        ) % {"problem": problem}
        return format_html(
            '{}<ul class="messagelist"><li class="warning">{}</li></ul>', help_text, warning
        )

    @admin.display(description=_("last error"), ordering="last_error")
    def short_last_error(self, bot: Bot) -> str:
        return Truncator(bot.last_error).chars(80)

    @admin.display(description=_("credentials"))
    def credentials_overview(self, bot: Bot) -> str:
        """What read-only viewers see of the credentials: secrets masked."""
        stored = bot.credentials or {}
        lines = [
            (spec.name, mask(str(value)) if spec.secret else str(value))
            for spec in adapter_class(bot.platform).credential_fields
            if (value := stored.get(spec.name))
        ]
        return format_html_join("", "<div>{}: <code>{}</code></div>", lines) or "-"

    def get_fieldsets(self, request: HttpRequest, obj: Bot | None = None) -> Any:
        if obj is None:
            return ((None, {"fields": ("tenant", "platform", "name")}),)
        if self.has_change_permission(request, obj):
            specs = adapter_class(obj.platform).credential_fields
            credentials = tuple(CREDENTIAL_PREFIX + spec.name for spec in specs)
        else:
            credentials = ("credentials_overview",)
        return (
            (None, {"fields": ("name", "tenant", "platform", "is_active", "callback_url_field")}),
            # Above the credentials: a failed check is fixed in the fields below it.
            (_("Self-test"), {"fields": ("self_test_report",)}),
            (
                _("Credentials: %(platform)s") % {"platform": obj.get_platform_display()},
                {"fields": credentials},
            ),
            (_("Behaviour"), {"fields": ("system_prompt", "shared_group_session")}),
            (
                _("Status"),
                {
                    "fields": (
                        "last_success_at",
                        "last_error",
                        "last_error_at",
                        "public_id",
                        "created_at",
                    )
                },
            ),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        # The stored credentials belong to one platform; another needs a new bot.
        if obj is not None:
            readonly.append("platform")
        return readonly

    def get_form(
        self, request: HttpRequest, obj: Bot | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        if obj is not None and self.has_change_permission(request, obj):
            kwargs["form"] = credentials_form(obj.platform)
        return super().get_form(request, obj, change, **kwargs)

    def response_add(
        self, request: HttpRequest, obj: Bot, post_url_continue: str | None = None
    ) -> HttpResponse:
        if IS_POPUP_VAR in request.POST or "_addanother" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        # The bot cannot work until its credentials are in: go straight to them.
        self.message_user(
            request,
            _("The bot “%(name)s” was added. Now enter its credentials.") % {"name": obj.name},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:channels_im_bot_change", args=[obj.pk]))

    @admin.action(description=_("Clear last error"), permissions=["change"])
    def clear_last_error(self, request: HttpRequest, queryset: QuerySet[Bot]) -> None:
        bots = self.scoped(request, queryset, writable=True).exclude(last_error="")
        with transaction.atomic():
            for bot in bots:
                bot.last_error, bot.last_error_at = "", None
                # Through save_model, so that the audit trail records it as a change.
                self.save_model(request, bot, None, change=True)
        count = len(bots)
        self.message_user(
            request, _("Cleared the last error of %(count)d bot(s).") % {"count": count}
        )
