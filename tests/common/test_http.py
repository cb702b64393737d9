import pytest
import requests

from common import http


@pytest.fixture
def environment(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "ollama.internal,127.0.0.1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp-ca.pem")
    http._environment_settings.cache_clear()
    yield
    http._environment_settings.cache_clear()


def test_environment_settings_are_those_requests_itself_would_use(environment):
    # In turn, so that each answer may come from the cache of those before it.
    for url in [
        "https://qyapi.weixin.qq.com/cgi-bin/message/send?access_token=x",
        "https://qyapi.weixin.qq.com/cgi-bin/gettoken",
        "https://ollama.internal:11434/api/chat",
        "http://127.0.0.1:11434/api/chat",
        "https://ollama.internal:11434/api/chat",
        "https://qyapi.weixin.qq.com/cgi-bin/gettoken",
    ]:
        plain = requests.Session().merge_environment_settings(url, {}, None, None, None)
        assert http.session().merge_environment_settings(url, {}, None, None, None) == plain


def test_the_proxy_and_ca_bundle_of_the_environment_apply(environment):
    found = http.session().merge_environment_settings(
        "https://open.feishu.cn/open-apis/im/v1/messages", {}, None, None, None
    )
    assert found["proxies"]["https"] == "http://proxy.corp:3128"
    assert found["verify"] == "/etc/ssl/corp-ca.pem"


def test_a_caller_changing_its_settings_does_not_change_the_next_callers(environment):
    url = "https://api.dingtalk.com/v1.0/robot/oToMessages/batchSend"
    http.session().merge_environment_settings(url, {}, None, None, None)["proxies"].clear()
    again = http.session().merge_environment_settings(url, {}, None, None, None)
    assert again["proxies"]["https"] == "http://proxy.corp:3128"
