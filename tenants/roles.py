"""A tenant's members: inviting them, and whose account a tenant admin may take charge of.

No e-mail is sent (the product has none configured): inviting someone, or resetting their
password, makes their password unusable and gives the admin a set-password link, shown once,
to pass on. The link is Django's password-reset token: it works once, until
PASSWORD_RESET_TIMEOUT, and the member chooses a password that the validators accept.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext_lazy as _

from .models import Membership

User = get_user_model()


def account_is_managed_by(user: Any, tenant_ids: Collection[int]) -> bool:
    """Whether an admin of `tenant_ids` may reset `user`'s password.

    Only if every membership of the account is in those tenants, and it holds no power
    beyond them (superuser, Django permissions or groups): taking over an account that
    also belongs to another tenant would take over that tenant too.
    """
    if user.is_superuser or user.user_permissions.exists() or user.groups.exists():
        return False
    tenants = set(Membership.objects.filter(user=user).values_list("tenant_id", flat=True))
    return bool(tenants) and tenants <= set(tenant_ids)


def start_over(user: Any) -> None:
    """Make the password unusable (ending the account's sessions) until the member
    follows a new set-password link."""
    user.set_unusable_password()
    user.save(update_fields=["password"])


def set_password_url(request: HttpRequest, user: Any) -> str:
    """The absolute URL of `user`'s set-password page."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return request.build_absolute_uri(reverse("admin:set_password", args=[uid, token]))


def link_message(request: HttpRequest, user: Any) -> str:
    """What the admin is shown, once: the link and how long it works."""
    return _(
        "Send %(user)s this link to set their password: %(url)s . It works once, for "
        "%(days)d days, and is not shown again; until it is used, %(user)s cannot sign in."
    ) % {
        "user": user.get_username(),
        "url": set_password_url(request, user),
        "days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86_400),
    }


class InviteForm(forms.ModelForm):
    """A tenant admin's "add member": a new account, which has no password until its
    owner follows the set-password link. An existing account cannot be named: a tenant
    admin must not reach the users of other tenants."""

    names_existing_accounts = False

    username = forms.CharField(
        label=_("user name"),
        max_length=User._meta.get_field("username").max_length,
        validators=[UnicodeUsernameValidator()],
        help_text=_(
            "A new account: letters, digits and @ . + - _ only. The operator may also name "
            "an existing account."
        ),
    )

    class Meta:
        model = Membership
        fields = ("username", "tenant", "role")

    def clean_username(self) -> str:
        username = User.normalize_username(self.cleaned_data["username"])
        self.account = User.objects.filter(username=username).first()
        if self.account is not None and self.names_existing_accounts:
            return username
        # Case-insensitively, as Django's own user form: "Alice" next to "alice" misleads.
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError(_("This user name is taken."), code="taken")
        return username

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        account, tenant = getattr(self, "account", None), cleaned.get("tenant")
        if account and tenant and Membership.objects.filter(user=account, tenant=tenant).exists():
            self.add_error("username", _("This account is already a member of this tenant."))
        return cleaned

    def member(self) -> tuple[Any, bool]:
        """The named account, or a new one without a password, and whether it is new.
        Call after validation, inside the admin's transaction."""
        if self.account is not None:
            return self.account, False
        return User.objects.create_user(self.cleaned_data["username"]), True


class AddMemberForm(InviteForm):
    """The operator's "add member": a new account, or an existing one."""

    names_existing_accounts = True
