"""The admin, scoped per tenant: one base class decides who sees and changes what.

Memberships are the source of truth, not Django's Permission table: a member may view
the tenant's rows, and change them if the role is admin. Auditors are read-only
everywhere. Only superusers create or delete tenants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from conversations import quota_display

from . import audit
from .models import ApiKey, Membership, Tenant
from .roles import AddMemberForm, InviteForm, account_is_managed_by, link_message, start_over

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

admin.site.site_header = _("IM Assistant administration")
admin.site.site_title = _("IM Assistant")
admin.site.index_title = _("Tenants, bots and conversation logs")


def tenant_roles(request: HttpRequest) -> dict[int, str]:
    """The user's role in each of their tenants, read once per request."""
    roles: dict[int, str] | None = getattr(request, "_tenant_roles", None)
    if roles is None:
        roles = dict(
            Membership.objects.filter(user=request.user.pk).values_list("tenant_id", "role")
        )
        request._tenant_roles = roles  # type: ignore[attr-defined]
    return roles


def tenant_ids(request: HttpRequest, *, writable: bool = False) -> list[int]:
    """The user's tenants; with `writable`, only those where they are a tenant admin."""
    return [
        tenant_id
        for tenant_id, role in tenant_roles(request).items()
        if not writable or role == Membership.Role.ADMIN
    ]


def _is_tenant_owned(model: type[Model]) -> bool:
    return any(f.name == "tenant" and f.related_model is Tenant for f in model._meta.fields)


class TenantRelatedListFilter(admin.RelatedFieldListFilter):
    """Choices are the related rows (bots …) of the user's tenants.

    RelatedOnlyFieldListFilter would SELECT DISTINCT over the whole log table to find
    them; this reads the small related table instead, and still never lists another
    tenant's rows.
    """

    def field_choices(
        self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, StrOrPromise]]:
        limit = {} if request.user.is_superuser else {"tenant__in": tenant_ids(request)}
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(include_blank=False, ordering=ordering, limit_choices_to=limit)


class TenantScopedAdmin(admin.ModelAdmin):
    """Base of every admin for tenant-owned rows.

    `tenant_field` is the lookup path from the row to its tenant ("pk" for Tenant
    itself, "conversation__tenant" for a row that only knows its conversation).
    """

    tenant_field: str = "tenant"

    def tenant_id_of(self, obj: Model) -> int | None:
        *path, last = self.tenant_field.split("__")
        for step in path:
            obj = getattr(obj, step)
        return obj.pk if last == "pk" else getattr(obj, f"{last}_id")

    def scoped(
        self, request: HttpRequest, queryset: QuerySet[Any], *, writable: bool = False
    ) -> QuerySet[Any]:
        """The rows of `queryset` the user may see (or, with `writable`, change).

        Actions need the writable form: one user can be admin of one tenant and
        auditor of another, and the changelist shows both.
        """
        if request.user.is_superuser:
            return queryset
        ids = tenant_ids(request, writable=writable)
        return queryset.filter(**{f"{self.tenant_field}__in": ids})

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # The change, delete and history views fetch through here too, so another
        # tenant's row is simply "not found".
        return self.scoped(request, super().get_queryset(request))

    def _allowed(self, request: HttpRequest, obj: Model | None, *, writable: bool) -> bool:
        if request.user.is_superuser:
            return True
        ids = tenant_ids(request, writable=writable)
        return bool(ids) if obj is None else self.tenant_id_of(obj) in ids

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(tenant_roles(request))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, obj, writable=False)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, obj, writable=True)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, None, writable=True)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, obj, writable=True)

    # Every add, change and delete through this base is recorded in the audit trail,
    # with the changed fields' old and new values (the stored row, read before the save).
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = audit.stored(obj)
        super().save_model(request, obj, form, change)
        audit.saved(obj, before, request=request)

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        audit.deleting(obj, request=request)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        # The bulk "delete selected" action is not in a transaction of its own.
        with transaction.atomic():
            for obj in queryset:
                audit.deleting(obj, request=request)
            super().delete_queryset(request, queryset)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        # Moving a row to another tenant would strand its bots and logs on the old one.
        if obj is not None and _is_tenant_owned(self.model):
            readonly.append("tenant")
        return readonly

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField | None:
        """Offer only the user's tenants (and their bots, conversations …).

        Django shows every row of the related table otherwise. A tenant admin of one
        tenant gets it stamped: the field is hidden and preset, yet still validated
        against their tenants, so uniqueness per tenant is checked by the form.
        """
        if not request.user.is_superuser:
            ids = tenant_ids(request, writable=True)
            related = db_field.related_model
            if related is Tenant:
                kwargs["queryset"] = Tenant.objects.filter(pk__in=ids)
                if len(ids) == 1:
                    kwargs.update(initial=ids[0], widget=forms.HiddenInput)
            elif _is_tenant_owned(related):
                kwargs["queryset"] = related._default_manager.filter(tenant__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_field = "pk"
    list_display = ("name", "slug", "model", "model_endpoint", "is_active", "legal_hold")
    list_filter = ("is_active", "legal_hold")
    search_fields = ("name", "slug")
    readonly_fields = ("created_at", "updated_at", "quota_use")
    fieldsets = (
        (None, {"fields": ("name", "slug", "is_active")}),
        (_("Model"), {"fields": ("model_endpoint", "model", "temperature", "keep_alive")}),
        (
            _("Model admission"),
            {"fields": ("max_concurrency", "fallback_model_endpoint", "fallback_model")},
        ),
        (_("Prompt"), {"fields": ("system_prompt", "language")}),
        (_("Limits"), {"fields": ("rate_limit_per_minute", "user_rate_limit_per_minute")}),
        (
            _("Quotas"),
            {
                "fields": (
                    "time_zone",
                    ("quota_messages_per_day", "quota_tokens_per_month"),
                    ("user_quota_messages_per_day", "user_quota_tokens_per_month"),
                    "quota_use",
                )
            },
        ),
        (_("Session"), {"fields": ("session_timeout_seconds", "context_max_rounds", "num_ctx")}),
        (_("Retention"), {"fields": ("retention_days", "retention_action", "legal_hold")}),
        (_("History"), {"fields": ("created_at", "updated_at")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        # The slug names the tenant in config files; switching a tenant off, and a legal
        # hold on its logs, are the operator's calls, not the tenant's.
        if not request.user.is_superuser:
            readonly += ["slug", "is_active", "legal_hold"]
        return readonly

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser

    @admin.display(description=_("use now"))
    def quota_use(self, tenant: Tenant) -> str:
        return quota_display.of_tenant(tenant) if tenant.pk else "-"


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    """Tenant admins invite and remove their tenant's members and reset their passwords
    (tenants/roles.py); auditors see who has access. Each one's own membership is the
    operator's to change, so no one locks themself out."""

    list_display = ("user", "tenant", "role", "password_set", "created_at")
    list_filter = ("role", ("tenant", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__username", "tenant__name")
    list_select_related = ("user", "tenant")
    readonly_fields = ("user", "created_at")
    actions = ("reset_password",)

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return (
            ("username", "tenant", "role")
            if obj is None
            else ("user", "tenant", "role", "created_at")
        )

    def get_form(
        self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = AddMemberForm if request.user.is_superuser else InviteForm
        return super().get_form(request, obj, change, **kwargs)

    def _is_own(self, request: HttpRequest, obj: Model | None) -> bool:
        return (
            isinstance(obj, Membership)
            and not request.user.is_superuser
            and obj.user_id == request.user.pk
        )

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_change_permission(request, obj) and not self._is_own(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_delete_permission(request, obj) and not self._is_own(request, obj)

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        obj.user, created = form.member()
        super().save_model(request, obj, form, change)
        if created:
            self.message_user(request, link_message(request, obj.user), messages.WARNING)

    @admin.display(description=_("password set"), boolean=True)
    def password_set(self, membership: Membership) -> bool:
        return membership.user.has_usable_password()

    @admin.action(description=_("Reset password (a new set-password link)"), permissions=["change"])
    def reset_password(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        writable = tenant_ids(request, writable=True)
        rows = self.scoped(request, queryset, writable=True).select_related("user")
        for user in {row.user_id: row.user for row in rows}.values():
            if user.pk == request.user.pk or not (
                request.user.is_superuser or account_is_managed_by(user, writable)
            ):
                refused = _(
                    "The password of %(user)s was not reset: it is your own account, or one "
                    "with access beyond your tenants, which only the operator may reset."
                )
                self.message_user(request, refused % {"user": user}, messages.ERROR)
                continue
            start_over(user)
            self.message_user(request, link_message(request, user), messages.WARNING)


class ApiKeyForm(forms.ModelForm):
    """Scopes as boxes to tick, not JSON to type."""

    scopes = forms.MultipleChoiceField(
        label=_("scopes"),
        choices=[(scope, scope) for scope in ApiKey.SCOPES],
        widget=forms.CheckboxSelectMultiple,
        initial=["chat"],
        required=False,
        help_text=_(
            "chat: send messages and read their answers · logs:read: read and export the "
            "conversation log and usage · admin: the tenant's settings and bots"
        ),
    )

    class Meta:
        model = ApiKey
        fields = ("tenant", "name", "scopes", "is_active")

    def clean_scopes(self) -> list[str]:
        """A new key given none has ["chat"], as the API contract says."""
        scopes = list(self.cleaned_data.get("scopes") or [])
        return scopes or (["chat"] if self.instance.pk is None else [])


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    list_display = ("name", "tenant", "prefix", "is_active", "created_at", "last_used_at")
    list_filter = ("is_active", ("tenant", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "prefix")
    list_select_related = ("tenant",)
    readonly_fields = ("prefix", "created_at", "last_used_at")

    form = ApiKeyForm

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        if obj is None:
            return ("tenant", "name", "scopes", "is_active")
        return ("tenant", "name", "scopes", "is_active", "prefix", "created_at", "last_used_at")

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        raw_key = ApiKey.generate()
        obj.set_key(raw_key)
        super().save_model(request, obj, form, change)
        # Only the hash is stored, so this message is the one chance to copy the key.
        self.message_user(
            request,
            _("The new API key is %(key)s. Copy it now: it will not be shown again.")
            % {"key": raw_key},
            messages.WARNING,
        )
