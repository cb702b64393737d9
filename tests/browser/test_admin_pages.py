"""The admin as a person sees it: headless Chromium signs in as each role, opens the
dashboard, checks that the charts were drawn, searches the message list and follows a
message to its place in its conversation's transcript, and keeps screenshots.

Screenshots go to $TEST_ARTIFACTS_DIR if set, else to pytest's temporary folder
(<basetemp>/screenshots0/, e.g. /tmp/pytest-of-root/pytest-current/screenshots0/).
Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them).
"""

import os
import shutil
from pathlib import Path

import pytest
from django.urls import reverse

from tests.browser import sample_log
from tests.factories import BotFactory, MessageFactory

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER),
        reason="no browser: apt-get install chromium chromium-driver (CI installs them)",
    ),
]

# The answered layer's colour (dashboard.css): the stylesheet reached the browser.
ANSWERED_FILL = "rgb(0, 158, 115)"
QUESTION = "出差回来以后，差旅报销需要准备哪些材料？"
ANSWER = (
    "差旅报销需要准备：一、经审批的出差申请单；二、交通票据（机票行程单、火车票）；"
    "三、住宿发票（抬头为公司全称）；四、填写完整的报销单并由部门负责人签字。"
    "所有票据请在出差结束后三十天内提交财务部，逾期需要分管副总审批。"
)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # As root (CI) Chromium needs --no-sandbox; /dev/shm is small in containers.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1900")
    options.add_experimental_option("prefs", {"intl.accept_languages": "en"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = os.environ.get("TEST_ARTIFACTS_DIR")
    if not folder:
        return tmp_path_factory.mktemp("screenshots")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder)


@pytest.fixture
def site(tenant_a, tenant_b, superuser, admin_a, auditor_a):
    """Two tenants with a month of log each; one bot of A failing."""
    bots_a = [BotFactory(tenant=tenant_a, name=n) for n in ("helpdesk", "hr-assistant")]
    bots_b = [BotFactory(tenant=tenant_b, name="b-sales", platform="feishu")]
    conversations = sample_log.fill([*bots_a, *bots_b])
    bots_a[0].record_success()
    bots_b[0].record_success()
    bots_a[1].record_error("delivery: errcode 60020 not allow to access from your ip")
    question = MessageFactory(
        conversation=conversations[0], content=QUESTION, sender="zhangsan", model="qwen2:1.5b",
        prompt_tokens=212, completion_tokens=96, queue_wait_ms=40, first_token_ms=620,
        total_ms=4180, done_reason="stop",
    )  # fmt: skip
    MessageFactory(
        conversation=conversations[0], reply_to=question, role="assistant", content=ANSWER,
        external_id=None, model="qwen2:1.5b", delivered_at=question.created_at,
    )  # fmt: skip
    return {"question": question, "other_tenant": conversations[2]}


def sign_in(browser, live_server, user, language="en"):
    browser.delete_all_cookies()
    browser.get(live_server.url + reverse("admin:login"))
    browser.add_cookie({"name": "django_language", "value": language})
    browser.get(live_server.url + reverse("admin:login"))
    browser.find_element("id", "id_username").send_keys(user.username)
    browser.find_element("id", "id_password").send_keys("pw")
    browser.find_element("css selector", "input[type=submit]").click()
    browser.find_element("css selector", "section.dash")  # waits for the home page


def drawn_charts(browser):
    """Each chart on the page: its SVG has a size on screen and marks with a size too."""
    charts = browser.find_elements("css selector", "svg.dash-svg")
    for chart in charts:
        assert chart.size["width"] > 300 and chart.size["height"] > 80
        marks = chart.find_elements("css selector", ".dash-mark")
        assert marks, chart.get_attribute("aria-labelledby")
        assert all(mark.size["width"] > 0 for mark in marks[:20])
    return charts


@pytest.mark.parametrize(
    ("role", "language", "sees_other_tenant"),
    [("superuser", "en", True), ("admin_a", "en", False), ("auditor_a", "zh-hans", False)],
)
def test_each_role_sees_its_dashboard_drawn(
    browser, live_server, screenshots, site, request, role, language, sees_other_tenant
):
    sign_in(browser, live_server, request.getfixturevalue(role), language)

    charts = drawn_charts(browser)
    assert len(charts) == 3
    answered = browser.find_element("css selector", "svg.dash-svg rect.answered")
    assert browser.execute_script("return getComputedStyle(arguments[0]).fill", answered) == (
        ANSWERED_FILL
    )
    page = browser.page_source
    assert ("b-sales" in page) is sees_other_tenant
    assert "errcode 60020" in page
    if language == "zh-hans":
        assert "每日提问（按结果）" in page
    browser.save_screenshot(str(screenshots / f"dashboard-{role}-{language}.png"))

    # The auditor's path: search the log, follow the message to its transcript.
    browser.get(live_server.url + reverse("admin:conversations_message_changelist"))
    search = browser.find_element("id", "searchbar")
    search.send_keys("差旅报销")
    search.submit()
    browser.save_screenshot(str(screenshots / f"messages-{role}-{language}.png"))
    browser.find_element("partial link text", QUESTION[:10]).click()
    question = site["question"]
    assert browser.current_url.endswith(f"#message-{question.pk}")
    exchange = browser.find_element("id", f"message-{question.pk}")
    assert QUESTION in exchange.text and ANSWER[:30] in exchange.text
    assert "212 / 96" in exchange.text and "zhangsan" in exchange.text
    assert browser.execute_script(  # the anchor scrolled the exchange into view
        "const r = arguments[0].getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= window.innerHeight",
        exchange,
    )
    browser.save_screenshot(str(screenshots / f"transcript-{role}-{language}.png"))

    other = site["other_tenant"]
    browser.get(
        live_server.url + reverse("admin:conversations_conversation_change", args=[other.pk])
    )
    assert (other.chat_id in browser.page_source) is sees_other_tenant


def test_a_tenant_admin_tests_a_bot_and_reads_what_to_do(
    browser, live_server, screenshots, admin_a, tenant_a, fake_platforms, fake_ollama, settings
):
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.save()
    fake_platforms.wecom_untrusted_ip = "203.0.113.7"
    bot = BotFactory(tenant=tenant_a, name="helpdesk")
    sign_in(browser, live_server, admin_a)
    browser.get(live_server.url + reverse("admin:channels_im_bot_change", args=[bot.pk]))
    browser.find_element("css selector", "form.self-test-form button").click()

    report = browser.find_element("css selector", "table.self-test")
    assert "Add 203.0.113.7 to the app's trusted IPs" in report.text
    failed = report.find_element("css selector", ".self-test-failed")
    colour = "return getComputedStyle(arguments[0]).backgroundColor"
    assert browser.execute_script(colour, failed) == "rgb(213, 94, 0)"  # selftest.css
    browser.save_screenshot(str(screenshots / "bot-self-test.png"))

    browser.get(live_server.url + reverse("admin:channels_im_bot_changelist"))
    assert browser.find_element("css selector", "td.field-self_test_badge .self-test-failed")
    browser.save_screenshot(str(screenshots / "bot-list-self-test.png"))
