"""What the bot itself says, in the tenant's language."""

import math

from django.utils.translation import gettext, ngettext, override

from tenants.models import Tenant

from .llm import LLMError
from .quotas import MESSAGES, TOKENS, Refusal, Scope


def apology(tenant: Tenant, failure: Exception | None = None) -> str:
    """What the person is told when no answer comes: why, where knowing it helps them
    (`failure.notice`), else that they may try again."""
    notice = getattr(failure, "notice", "") if isinstance(failure, LLMError) else ""
    with override(tenant.language):
        if notice == "question_too_long":
            return gettext(
                "Your message is too long for this model to read. "
                "Please shorten it, or send it in parts."
            )
        if notice == "thought_too_long":
            return gettext(
                "The model spent its whole answer length thinking and did not answer. "
                "Please ask a narrower question."
            )
        return gettext("Sorry, I could not answer this time. Please try again in a moment.")


def cut_off(tenant: Tenant, done_reason: str) -> str:
    """The line added to an answer that did not end by itself."""
    with override(tenant.language):
        if done_reason == "length":
            return gettext("(The answer was cut off at the length limit.)")
        return gettext("(The answer was cut off: it took too long.)")


def stopped(tenant: Tenant, text: str) -> str:
    """A stopped answer: what the model wrote until then (maybe nothing), marked so."""
    with override(tenant.language):
        return (gettext("%(answer)s (stopped)") % {"answer": text.rstrip()}).strip()


def thinking(tenant: Tenant) -> str:
    """Shown where the answer will appear while a reasoning model thinks."""
    with override(tenant.language):
        return gettext("Thinking…")


def still_writing(tenant: Tenant) -> str:
    """Sent once where the platform shows no answer growing, when an answer takes long."""
    with override(tenant.language):
        return gettext("Writing the answer, one moment…")


def queued(tenant: Tenant, ahead: int, seconds: float | None) -> str:
    """Where a question waiting for the model stands: how many questions are before it
    and, when known, about how long until its answer (rounded up: to 5 s, then minutes)."""
    with override(tenant.language):
        if seconds is None:
            return gettext("Queued: %(ahead)d ahead of you") % {"ahead": ahead}
        if seconds < 90:
            return gettext("Queued: %(ahead)d ahead of you, about %(seconds)d s") % {
                "ahead": ahead,
                "seconds": 5 * math.ceil(seconds / 5),
            }
        return gettext("Queued: %(ahead)d ahead of you, about %(minutes)d min") % {
            "ahead": ahead,
            "minutes": math.ceil(seconds / 60),
        }


def loading(tenant: Tenant) -> str:
    """Told once when the model must be loaded before it can answer."""
    with override(tenant.language):
        return gettext(
            "The model is loading after a quiet spell; this answer takes a little longer."
        )


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


def quota_exceeded(tenant: Tenant, over: Refusal) -> str:
    """Which quota the person is over and when it starts again, in the tenant's time."""
    with override(tenant.language):
        return gettext("%(quota)s is used up. It starts again at %(time)s (%(zone)s).") % {
            "quota": _quota(over) % {"limit": f"{over.limit:,}"},
            "time": over.resets_at.strftime("%Y-%m-%d %H:%M"),
            "zone": str(over.resets_at.tzinfo),
        }


def _quota(over: Refusal) -> str:
    """The quota's name: a whole phrase for each, as the languages need."""
    n = over.limit
    return {
        (Scope.USER.value, MESSAGES): ngettext(
            "Your daily quota of %(limit)s message", "Your daily quota of %(limit)s messages", n
        ),
        (Scope.BOT.value, MESSAGES): ngettext(
            "This bot's daily quota of %(limit)s message",
            "This bot's daily quota of %(limit)s messages",
            n,
        ),
        (Scope.TENANT.value, MESSAGES): ngettext(
            "Your organization's daily quota of %(limit)s message",
            "Your organization's daily quota of %(limit)s messages",
            n,
        ),
        (Scope.USER.value, TOKENS): ngettext(
            "Your monthly quota of %(limit)s token", "Your monthly quota of %(limit)s tokens", n
        ),
        (Scope.BOT.value, TOKENS): ngettext(
            "This bot's monthly quota of %(limit)s token",
            "This bot's monthly quota of %(limit)s tokens",
            n,
        ),
        (Scope.TENANT.value, TOKENS): ngettext(
            "Your organization's monthly quota of %(limit)s token",
            "Your organization's monthly quota of %(limit)s tokens",
            n,
        ),
    }[over.scope, over.kind]
