"""What a bot's self-test found: one `Finding` per check, passed, failed or skipped.

The checks live beside what they check: each platform package asks its own API
(channels_im/platforms/*/checks.py), the LLM client's neighbour asks the model endpoint
(conversations/model_check.py), and channels_im/selftest.py runs them all. This module
is only their common shape, so that neither side needs to know the other.

A finding is stored in every language of the admin (settings.LANGUAGES) at once: the
person reading it later, in the admin, the API or a terminal, may read another language
than the one that ran the test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import pgettext_lazy

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
STATUSES = (PASSED, FAILED, SKIPPED)
STATUS_LABELS = {
    PASSED: pgettext_lazy("self-test check", "passed"),
    FAILED: pgettext_lazy("self-test check", "failed"),
    SKIPPED: pgettext_lazy("self-test check", "skipped"),
}


@dataclass(frozen=True)
class Finding:
    """One check's outcome. Texts are lazy translations (`gettext_lazy`, `format_lazy`),
    rendered in every language by `as_json`."""

    key: str  # a stable name for programs: "credentials", "model", "trusted_ip" …
    status: str  # PASSED, FAILED or SKIPPED
    label: StrOrPromise  # what is checked, e.g. "Credentials accepted"
    detail: StrOrPromise = ""  # what was found; for a skipped check, why it was skipped
    action: StrOrPromise = ""  # what to do about it; empty when nothing needs doing
    # What the platform told about the bot that the bot should keep (Feishu's open_id),
    # merged into its credentials by the runner; never shown.
    learned: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """`{"key", "status", "label", "detail", "action"}`, each text a mapping of
        language code (settings.LANGUAGES) to text: what the bot keeps and the API shows."""
        return {
            "key": self.key,
            "status": self.status,
            "label": in_every_language(self.label),
            "detail": in_every_language(self.detail),
            "action": in_every_language(self.action),
        }


def passed(key: str, label: StrOrPromise, detail: StrOrPromise = "") -> Finding:
    return Finding(key, PASSED, label, detail)


def failed(key: str, label: StrOrPromise, detail: StrOrPromise, action: StrOrPromise) -> Finding:
    return Finding(key, FAILED, label, detail, action)


def skipped(key: str, label: StrOrPromise, why: StrOrPromise) -> Finding:
    return Finding(key, SKIPPED, label, why)


def in_every_language(text: StrOrPromise) -> dict[str, str]:
    """{language code: `text` rendered in it} for every language of settings.LANGUAGES."""
    rendered = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            rendered[code] = str(text)
    return rendered


def localized(texts: Mapping[str, str], language: str | None = None) -> str:
    """The text of a stored finding in `language` (default: the active one), else in the
    default language, else any: a finding stored before a language was added still reads."""
    language = language or translation.get_language() or settings.LANGUAGE_CODE
    for code in (language, settings.LANGUAGE_CODE, *texts):
        if texts.get(code):
            return texts[code]
    return ""


def all_passed(findings: list[dict[str, Any]]) -> bool:
    """Whether stored findings hold no failure (a skipped check is no failure)."""
    return all(finding.get("status") != FAILED for finding in findings)
