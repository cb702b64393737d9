"""What the admin's home page shows: the last DAYS days of the tenants a user may see.

Read from the rollup (rollup.py) and the bots' own rows, never from the log, so the page
costs about the same with a thousand messages or a million. Operators see every tenant;
a member sees their own tenants' figures and nothing of another's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Q, QuerySet, Sum
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from channels_im.models import Bot
from common.charts import Chart, Series, lines, stacked_bars
from tenants.admin import tenant_ids
from tenants.models import Tenant

from . import rollup
from .models import BotDay, Message, UserDay

DAYS = 30
TOP = 10  # rows of each top list
BOTS_SHOWN = 20  # the health table's rows; the bot list has the rest

Status = Message.Status
# The columns' layers, bottom up: (statuses, legend label, CSS class).
OUTCOMES = (
    ((Status.ANSWERED,), Status.ANSWERED.label, "answered"),
    ((Status.FAILED,), Status.FAILED.label, "failed"),
    ((Status.RATE_LIMITED,), Status.RATE_LIMITED.label, "rate-limited"),
    ((Status.QUOTA_EXCEEDED,), Status.QUOTA_EXCEEDED.label, "over-quota"),
    ((Status.IGNORED,), Status.IGNORED.label, "ignored"),
    ((Status.QUEUED, Status.ANSWERING), gettext_lazy("In progress"), "pending"),
)
STATES = {
    "failing": gettext_lazy("Failing"),
    "ok": gettext_lazy("Working"),
    "idle": gettext_lazy("No answer yet"),
    "off": gettext_lazy("Off"),
}


@dataclass
class BotHealth:
    """One bot's state and its figures over the dashboard's days."""

    bot: Bot
    questions: int = 0
    tokens: int = 0
    failures: int = 0

    @property
    def state(self) -> str:
        """A key of STATES: "failing" while its last error is newer than its last
        delivered answer."""
        bot = self.bot
        if not (bot.is_active and bot.tenant.is_active):
            return "off"
        if bot.last_error_at and (
            bot.last_success_at is None or bot.last_error_at > bot.last_success_at
        ):
            return "failing"
        return "ok" if bot.last_success_at else "idle"

    @property
    def state_label(self) -> str:
        return str(STATES[self.state])


@dataclass(frozen=True)
class Ranked:
    """A row of a top list; `share` is its questions in percent of the first row's."""

    name: str
    tenant: str
    questions: int
    tokens: int
    share: int


@dataclass
class Dashboard:
    first: date
    last: date
    days: int = DAYS
    questions: int = 0
    answered: int = 0
    failed: int = 0
    tokens: int = 0
    answer_p50_ms: int | None = None
    answer_p95_ms: int | None = None
    charts: list[Chart] = field(default_factory=list)
    bots: list[BotHealth] = field(default_factory=list)
    more_bots: int = 0
    top_bots: list[Ranked] = field(default_factory=list)
    top_users: list[Ranked] = field(default_factory=list)
    several_tenants: bool = False


def for_request(request: HttpRequest) -> Dashboard:
    """The dashboard of the signed-in user: every tenant for an operator, else theirs."""
    scope = Q() if request.user.is_superuser else Q(tenant__in=tenant_ids(request))
    last = rollup.today()
    days = [last - timedelta(days=n) for n in reversed(range(DAYS))]
    board = Dashboard(first=days[0], last=last)
    month = BotDay.objects.filter(scope, day__gte=board.first, day__lte=last)
    _outcomes(board, month, days)
    _answer_times(board, month, days)
    _bots(board, scope, month)
    _top_users(board, scope)
    return board


def _outcomes(board: Dashboard, month: QuerySet[BotDay], days: list[date]) -> None:
    counts: dict[tuple[date, str], int] = {}
    for row in month.values("day", "status").annotate(
        n=Sum("messages"), tokens=Sum("prompt_tokens") + Sum("completion_tokens")
    ):
        counts[row["day"], row["status"]] = row["n"]
        board.tokens += row["tokens"]
    series = [
        Series(str(label), css, [sum(counts.get((day, s), 0) for s in statuses) for day in days])
        for statuses, label, css in OUTCOMES
    ]
    board.questions = sum(counts.values())
    board.answered = sum(n for (_day, status), n in counts.items() if status == Status.ANSWERED)
    board.failed = sum(n for (_day, status), n in counts.items() if status == Status.FAILED)
    description = _(
        "Questions per day over %(days)d days by outcome: %(questions)s in all, "
        "%(answered)s answered, %(failed)s failed."
    ) % {
        "days": DAYS,
        "questions": f"{board.questions:,}",
        "answered": f"{board.answered:,}",
        "failed": f"{board.failed:,}",
    }
    chart = Chart("outcomes", _("Questions per day, by outcome"), description, series)
    board.charts.append(stacked_bars(chart, *_day_labels(days)))


def _answer_times(board: Dashboard, month: QuerySet[BotDay], days: list[date]) -> None:
    """Per-day p50 and p95 of the answer time and of the first token, from the buckets."""
    total: dict[date, list[list[int]]] = defaultdict(list)
    first_token: dict[date, list[list[int]]] = defaultdict(list)
    answered = month.filter(status=Status.ANSWERED)
    for day, histograms in answered.values_list("day", "histograms"):
        total[day].append(histograms["total_ms"])
        first_token[day].append(histograms["first_token_ms"])
    whole = rollup.summed(h for histograms in total.values() for h in histograms)
    board.answer_p50_ms = rollup.percentile(whole, 0.5)
    board.answer_p95_ms = rollup.percentile(whole, 0.95)
    figures = (
        (
            "answer-time",
            total,
            _("Answer time"),
            _("From the question to the answer sent, answered questions, per day."),
        ),
        (
            "first-token",
            first_token,
            _("Time to first token"),
            _("From the question to the model's first word, answered questions, per day."),
        ),
    )
    for key, per_day, title, description in figures:
        buckets = [rollup.summed(per_day.get(day, [])) for day in days]
        series = [
            Series("p50", "p50", [rollup.percentile(b, 0.5) for b in buckets]),
            Series("p95", "p95", [rollup.percentile(b, 0.95) for b in buckets]),
        ]
        # Drawn half as wide as the outcomes: a narrower canvas keeps its text readable.
        chart = Chart(key, title, description, series, width=420, height=200)
        board.charts.append(lines(chart, *_day_labels(days), fmt=duration))


def _bots(board: Dashboard, scope: Q, month: QuerySet[BotDay]) -> None:
    figures = month.values("bot").annotate(
        questions=Sum("messages"),
        tokens=Sum("prompt_tokens") + Sum("completion_tokens"),
        failures=Sum("messages", filter=Q(status=Status.FAILED), default=0),
    )
    by_bot = {row["bot"]: (row["questions"], row["tokens"], row["failures"]) for row in figures}
    health = [
        BotHealth(bot, *by_bot.get(bot.pk, (0, 0, 0)))
        for bot in Bot.objects.filter(scope).select_related("tenant")
    ]
    board.several_tenants = len({h.bot.tenant_id for h in health}) > 1
    ranked = sorted(health, key=lambda h: (-h.questions, -h.tokens, h.bot.name))
    board.top_bots = _ranked(
        [(h.bot.name, h.bot.tenant.name, h.questions, h.tokens) for h in ranked if h.questions]
    )
    # Those needing attention first, then the busiest.
    attention = sorted(ranked, key=lambda h: (h.state != "failing", -h.failures, -h.questions))
    board.bots = attention[:BOTS_SHOWN]
    board.more_bots = len(attention) - len(board.bots)


def _top_users(board: Dashboard, scope: Q) -> None:
    # Grouped by the tenant's id, not its name: no join, and a cheaper sort.
    rows = list(
        UserDay.objects.filter(scope, day__gte=board.first, day__lte=board.last)
        .values("tenant", "sender")
        .annotate(questions=Sum("messages"), all_tokens=Sum("tokens"))
        .order_by("-questions", "-all_tokens", "sender")[:TOP]
    )
    names = dict(
        Tenant.objects.filter(pk__in={r["tenant"] for r in rows}).values_list("pk", "name")
    )
    board.top_users = _ranked(
        [(r["sender"], names[r["tenant"]], r["questions"], r["all_tokens"]) for r in rows]
    )


def _ranked(rows: list[tuple[str, str, int, int]]) -> list[Ranked]:
    rows = rows[:TOP]
    most = max((row[2] for row in rows), default=0) or 1
    return [
        Ranked(name, tenant, questions, tokens, round(questions * 100 / most))
        for name, tenant, questions, tokens in rows
    ]


def _day_labels(days: list[date]) -> tuple[list[str], list[str]]:
    """Short axis labels (month-day) and the full dates for titles."""
    return [f"{d:%m-%d}" for d in days], [d.isoformat() for d in days]


def duration(ms: float) -> str:
    """Milliseconds as people read them: "850 ms", "1.5 s"."""
    return f"{ms:,.0f} ms" if ms < 1000 else f"{ms / 1000:,.1f} s"
