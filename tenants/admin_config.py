from django.contrib.admin.apps import AdminConfig


class TenantAdminConfig(AdminConfig):
    """django.contrib.admin with our site (tenants/sites.py), named in INSTALLED_APPS in
    its place. A module of its own: INSTALLED_APPS are imported before any model is, and
    the site's module imports the auth forms, which import models."""

    default_site = "tenants.sites.TenantAdminSite"
