"""The admin site: who may sign in, and the page where a member sets their password.

A membership is what lets a person into the admin, not Django's "staff status": the
operator (superuser) and every active member of a tenant may sign in, nobody else. It is
checked on every request, so removing someone's last membership shuts them out at once,
live session or not. `tenants.admin_config.TenantAdminConfig` makes this class the `admin.site`.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.auth.views import PasswordResetConfirmView
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils.translation import gettext_lazy as _

from .models import Membership


def may_sign_in(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Active, and the operator or a member of at least one tenant."""
    return bool(
        user.is_active
        and (
            getattr(user, "is_superuser", False) or Membership.objects.filter(user=user.pk).exists()
        )
    )


class MemberAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form, asking for a membership instead of staff status."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": _(
            "Please enter the correct %(username)s and password of a tenant member or "
            "operator account. Note that both fields may be case-sensitive."
        ),
    }

    def confirm_login_allowed(self, user: User) -> None:
        # Skip AdminAuthenticationForm's is_staff test; keep AuthenticationForm's is_active.
        super(AdminAuthenticationForm, self).confirm_login_allowed(user)
        if not may_sign_in(user):
            # The same words as a wrong password: the form does not confirm the account.
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class SetPasswordView(PasswordResetConfirmView):
    """Django's password-reset confirmation (token checked, validators applied, the
    link dead once used), signing the member in when done."""

    post_reset_login = True
    # Named because two backends are configured; axes only throttles password sign-ins.
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"


class TenantAdminSite(admin.AdminSite):
    """Django's admin, signed in to by membership, with the members' set-password page."""

    login_form = MemberAuthenticationForm

    def has_permission(self, request: HttpRequest) -> bool:
        return may_sign_in(request.user)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        # Public (the token is the credential), so not wrapped in admin_view.
        route = "set-password/<uidb64>/<token>/"
        return [path(route, self.set_password, name="set_password"), *super().get_urls()]

    def set_password(self, request: HttpRequest, uidb64: str, token: str) -> HttpResponseBase:
        view = SetPasswordView.as_view(
            extra_context=self.each_context(request),
            success_url=reverse("admin:index", current_app=self.name),
        )
        return view(request, uidb64=uidb64, token=token)
