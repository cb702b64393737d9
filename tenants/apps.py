from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.translation import gettext_lazy as _


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = _("Tenants")

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks


class TenantAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site (tenants/sites.py), named in INSTALLED_APPS in
    its place. Imported as a module attribute and `default = False`, so that Django still
    picks TenantsConfig as the "tenants" app's own config."""

    default = False
    default_site = "tenants.sites.TenantAdminSite"
