"""The admin's home page: a month of figures, per role, never another tenant's."""

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from conversations import dashboard, rollup
from conversations.dashboard import BotHealth
from tests.conversations.test_rollup import ask, local
from tests.factories import BotFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

HOME = reverse("admin:index")


@pytest.fixture
def log(tenant_a, tenant_b):
    """Tenant A: two bots, ann and bob asking; tenant B: one bot, eve asking."""
    helpdesk = BotFactory(tenant=tenant_a, name="helpdesk")
    hr = BotFactory(tenant=tenant_a, name="hr-bot")
    secret = BotFactory(tenant=tenant_b, name="b-secret-bot")
    for n in range(6):
        ask(helpdesk, local(-n, 10), sender="ann", total_ms=1_200, first_token_ms=300)
    ask(hr, local(0, 9), sender="bob", status="failed", prompt_tokens=5, completion_tokens=0)
    for _ in range(4):
        ask(secret, local(-1, 9), sender="eve-in-b", total_ms=80_000, prompt_tokens=700)
    rollup.refresh(days=30)
    return helpdesk, hr, secret


def board_for(user):
    request = RequestFactory().get(HOME)
    request.user = user
    return dashboard.for_request(request)


def test_a_member_sees_only_their_tenants_figures(log, admin_a):
    board = board_for(admin_a)

    assert (board.questions, board.answered, board.failed) == (7, 6, 1)
    assert board.tokens == 5 + 6 * 0  # only hr-bot's failed question reported tokens
    assert {h.bot.name for h in board.bots} == {"helpdesk", "hr-bot"}
    assert [r.name for r in board.top_users] == ["ann", "bob"]
    assert [r.name for r in board.top_bots] == ["helpdesk", "hr-bot"]
    assert not board.several_tenants
    assert board.answer_p50_ms is not None and 1_000 <= board.answer_p50_ms <= 1_500


def test_an_operator_sees_every_tenant(log, superuser):
    board = board_for(superuser)

    assert board.questions == 11
    assert {h.bot.name for h in board.bots} == {"helpdesk", "hr-bot", "b-secret-bot"}
    assert board.top_users[0].name == "ann"
    assert board.several_tenants
    # The slow tenant B answers pull the month's p95 up.
    assert board.answer_p95_ms >= 60_000


def test_a_user_without_a_membership_sees_nothing(log):
    board = board_for(UserFactory(username="nobody"))
    assert (board.questions, board.bots, board.top_users, board.top_bots) == (0, [], [], [])
    assert not any(chart.has_data for chart in board.charts)


def test_the_home_page_never_shows_another_tenants_names(client, log, admin_a, outsider):
    client.force_login(outsider)  # charlie, of tenant B
    page = client.get(HOME).content.decode()
    assert "b-secret-bot" in page and "eve-in-b" in page
    assert "helpdesk" not in page and ">ann<" not in page

    client.force_login(admin_a)
    page = client.get(HOME).content.decode()
    assert "helpdesk" in page and ">ann<" in page
    assert "b-secret-bot" not in page and "eve-in-b" not in page


def test_the_home_page_draws_three_charts_with_titles(client, log, auditor_a):
    client.force_login(auditor_a)
    response = client.get(HOME)
    page = response.content.decode()

    assert response.status_code == 200
    assert page.count('<svg class="dash-svg"') == 3
    assert page.count("<desc id=") == 3
    board = response.context["dashboard"]
    outcomes, answer_time, first_token = board.charts
    # Six days with answers, one of them with a failure stacked on top.
    assert len(outcomes.bars) == 7
    assert sum(1 for bar in outcomes.bars if bar.css == "failed") == 1
    assert len([d for d in answer_time.dots if d.css == "p50"]) == 6
    assert "<title>" + outcomes.bars[0].title + "</title>" in page
    assert first_token.lines


def test_the_home_page_speaks_chinese(client, log, admin_a):
    client.force_login(admin_a)
    page = client.get(HOME, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "每日提问（按结果）" in page
    assert "首 Token 延迟" in page
    assert "机器人状态" in page
    assert "Questions per day" not in page


def test_a_failing_bot_comes_first_with_its_last_error(client, log, admin_a):
    helpdesk, hr, _ = log
    hr.record_success()
    hr.record_error("delivery: errcode 60020 not allow to access")
    helpdesk.record_success()

    board = board_for(admin_a)

    assert [(h.bot.name, h.state, h.failures) for h in board.bots] == [
        ("hr-bot", "failing", 1),
        ("helpdesk", "ok", 0),
    ]
    client.force_login(admin_a)
    assert "errcode 60020 not allow to access" in client.get(HOME).content.decode()


@pytest.mark.parametrize(
    ("active", "success", "error", "state"),
    [
        (True, None, None, "idle"),
        (True, 0, None, "ok"),
        (True, 0, -5, "ok"),  # an error before the last success: recovered
        (True, -5, 0, "failing"),
        (True, None, 0, "failing"),
        (False, 0, None, "off"),
    ],
)
def test_a_bots_state_compares_its_last_error_with_its_last_success(
    tenant_a, active, success, error, state
):
    now = timezone.now()
    at = {None: None} | {n: now + timedelta(minutes=n) for n in (0, -5)}
    bot = BotFactory(
        tenant=tenant_a, is_active=active, last_success_at=at[success], last_error_at=at[error]
    )
    assert BotHealth(bot).state == state


def test_a_success_is_written_at_most_once_a_minute_unless_an_error_came_since(tenant_a):
    bot = BotFactory(tenant=tenant_a)
    bot.record_success()
    bot.refresh_from_db()
    first = bot.last_success_at
    assert first is not None

    bot.record_success()
    bot.refresh_from_db()
    assert bot.last_success_at == first  # within the minute: not written again

    bot.record_error("model: down")
    bot.record_success()
    bot.refresh_from_db()
    assert bot.last_success_at > first
    assert BotHealth(bot).state == "ok"


def test_a_member_of_two_tenants_sees_both(log, tenant_b):
    both = MembershipFactory(user__username="dora", tenant=tenant_b, role="auditor").user
    MembershipFactory(user=both, tenant=log[0].tenant, role="auditor")
    board = board_for(both)
    assert board.questions == 11
    assert board.several_tenants
