"""System checks: a bad encryption key fails at start, not at the first callback."""

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from . import encryption


@checks.register(checks.Tags.security, deploy=False)
def encryption_key_check(app_configs, **kwargs) -> list[checks.CheckMessage]:  # noqa: ANN001
    try:
        encryption.configured_keys()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                id="tenants.E001",
                hint="32 random bytes in URL-safe base64 (44 characters).",
            )
        ]
    return []
