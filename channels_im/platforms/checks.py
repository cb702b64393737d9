"""What the platforms' self-tests share: the credentials check (a new access token) and
the words for a platform's refusal. Each platform's own checks are in its package's
`checks.py`; `PlatformAdapter.self_test` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from common.selftest import Finding, failed, passed, skipped

from .base import DeliveryError
from .client import ApiClient

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

Client = TypeVar("Client", bound=ApiClient)

CREDENTIALS = "credentials"
CREDENTIALS_LABEL = _("Credentials accepted")
UNREACHABLE_ACTION = _(
    "Check that this server can reach the platform's API (firewall, proxy, DNS), then test again."
)


def credentials(
    make_client: Callable[[], Client], timeout: float, fix: StrOrPromise
) -> tuple[Finding, Client | None]:
    """The "credentials" finding, from a new access token asked for with the bot's
    credentials, and the client holding that token for the checks that follow (None
    when there is none). The token is the client's own: a refused secret leaves the
    token the bot's deliveries use alone. `fix` is what to do when the platform refuses."""
    try:
        client = make_client()
        client.timeout = timeout
        client.use_own_token()
    except KeyError as exc:  # the adapter's client needs this credential
        detail = format_lazy(_("Not set: {names}."), names=exc.args[0])
        action = _("Enter it on the bot's page in the admin, or in the apply_config file.")
        return failed(CREDENTIALS, CREDENTIALS_LABEL, detail, action), None
    except DeliveryError as exc:
        return refused(CREDENTIALS, CREDENTIALS_LABEL, exc, fix), None
    return passed(CREDENTIALS, CREDENTIALS_LABEL, _("The platform gave an access token.")), client


def refused(key: str, label: StrOrPromise, exc: DeliveryError, fix: StrOrPromise) -> Finding:
    """A failed finding for a platform call that failed: `fix` when the platform refused,
    the network advice when it could not be asked (a timeout, a 5xx)."""
    if exc.permanent:
        return failed(
            key, label, format_lazy(_("The platform refused: {error}"), error=str(exc)), fix
        )
    detail = format_lazy(_("No usable answer from the platform: {error}"), error=str(exc))
    return failed(key, label, detail, UNREACHABLE_ACTION)


def needs_credentials(key: str, label: StrOrPromise) -> Finding:
    """A check that calls the platform, skipped because there is no access token."""
    return skipped(key, label, _("Runs once the credentials are accepted."))
