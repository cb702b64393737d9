"""How the API's authentication shows in the OpenAPI schema (drf-spectacular
extensions; registered by being imported, from assistant/api_urls.py)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api_auth.ApiKeyAuthentication"
    name = "tenantApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        scheme = build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Bearer"
        )
        scheme["description"] = "A tenant API key, with the scopes the endpoint needs."
        return scheme


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api_auth.TenantSessionAuthentication"
    name = "adminSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "Signed in to the admin; a member of several tenants names one "
            "in the X-Tenant header.",
        }
