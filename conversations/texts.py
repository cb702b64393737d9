"""What the bot itself says, in the tenant's language."""

from django.utils.translation import gettext, override

from tenants.models import Tenant


def apology(tenant: Tenant) -> str:
    with override(tenant.language):
        return gettext("Sorry, I could not answer this time. Please try again in a moment.")


def unreadable(tenant: Tenant) -> str:
    with override(tenant.language):
        return gettext(
            "I can only read text (and voice messages with a transcript). "
            "Please type your question."
        )


def rate_limited(tenant: Tenant) -> str:
    with override(tenant.language):
        return gettext(
            "You are sending messages faster than this assistant allows. "
            "Please wait a minute and try again."
        )
