"""The log lists' own filters in the admin: a period of days, the platform, a user and a
chat. Each means what the filter of the same name means in the REST API
(log_filters.py), so a list and its export select the same rows either way.

The query parameters are the API's names: `platform`, `user`, `chat`, and `from` / `to`
for the period (days, both included, in TIME_ZONE).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from channels_im.platforms import platform_choices

from .log_filters import days, narrow

if TYPE_CHECKING:
    from django.contrib.admin.views.main import ChangeList
    from django_stubs_ext import StrOrPromise


class InputFilter(admin.ListFilter):
    """A filter typed into a small form in the sidebar. `inputs` maps each query
    parameter it reads to its label; the other parameters of the list are kept."""

    template = "admin/conversations/input_filter.html"
    inputs: ClassVar[dict[str, StrOrPromise]]
    input_type = "text"

    def __init__(
        self, request: HttpRequest, params: dict[str, list[str]], model: Any, model_admin: Any
    ) -> None:
        super().__init__(request, params, model, model_admin)
        for name in self.inputs:
            value = params.pop(name, [""])[-1].strip()
            if value:
                self.used_parameters[name] = value

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str | None]:
        return list(self.inputs)

    def choices(self, changelist: ChangeList) -> Any:
        """One "choice": what the template needs to draw the form."""
        kept = [
            (name, value)
            for name, values in changelist.filter_params.items()
            if name not in self.inputs
            for value in values
        ]
        yield {
            "inputs": [
                (name, label, self.used_parameters.get(name, ""))
                for name, label in self.inputs.items()
            ],
            "kept": kept,
            "clear": changelist.get_query_string(remove=list(self.inputs))
            if self.used_parameters
            else None,
        }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return narrow(queryset, self.used_parameters)


class UserFilter(InputFilter):
    """The person: a message's sender, a conversation's user (the platform's id)."""

    title = _("user")
    inputs = {"user": _("user id")}


class ChatFilter(InputFilter):
    title = _("chat")
    inputs = {"chat": _("chat id")}


class PeriodFilter(InputFilter):
    """Days from `from` to `to`, both included (either may be left empty): a message's
    creation, a conversation's last activity."""

    title = _("date")
    inputs = {"from": _("from"), "to": _("to")}
    input_type = "date"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        try:
            first, last = (self._day(name) for name in self.inputs)
        except ValueError as exc:
            # Django's list answers this by showing the list without its filters.
            raise IncorrectLookupParameters(exc) from exc
        return narrow(queryset, days(first, last))

    def _day(self, name: str) -> date | None:
        value = self.used_parameters.get(name)
        return date.fromisoformat(str(value)) if value else None


class ActivityPeriodFilter(PeriodFilter):
    title = _("last activity")


class PlatformFilter(admin.SimpleListFilter):
    title = _("platform")
    parameter_name = "platform"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        return platform_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return narrow(queryset, {"platform": self.value()})
