"""`{% dashboard %}`: the admin home's charts and tables (templates/admin/index.html)."""

from typing import Any

from django import template

from conversations.dashboard import duration as dashboard_duration
from conversations.dashboard import for_request

register = template.Library()


@register.inclusion_tag("admin/dashboard/dashboard.html", takes_context=True)
def dashboard(context: template.Context) -> dict[str, Any]:
    """The figures of the tenants the signed-in user may see (conversations/dashboard.py)."""
    return {"dashboard": for_request(context["request"])}


@register.filter
def duration(ms: float | None) -> str:
    """Milliseconds as people read them ("850 ms", "1.5 s"); "–" for none."""
    return "–" if ms is None else dashboard_duration(ms)
