from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = _("Tenants")

    def ready(self) -> None:
        # checks registers the system checks, audit_admin the audit trail's admin.
        from . import audit_admin, audit_signals, checks  # noqa: F401

        audit_signals.connect()
