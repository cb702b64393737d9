"""Every token client's refresh and error mapping, against the fake platforms' real HTTP."""

import pytest

from channels_im.platforms.base import DeliveryError
from channels_im.platforms.dingtalk.client import DingTalkClient
from channels_im.platforms.feishu.client import FeishuClient
from channels_im.platforms.wecom.client import WeComClient

WECOM = (
    lambda: WeComClient("ww-corp", "secret"),
    "/cgi-bin/gettoken",
    (
        "POST",
        "/cgi-bin/message/send",
        {"touser": "u", "msgtype": "text", "text": {"content": "hi"}},
    ),
)
FEISHU = (
    lambda: FeishuClient("cli_app", "secret"),
    "/open-apis/auth/v3/tenant_access_token/internal",
    ("POST", "/open-apis/im/v1/messages/om_1/reply", {"msg_type": "text", "content": "{}"}),
)
DINGTALK = (
    lambda: DingTalkClient("dingapp", "secret"),
    "/v1.0/oauth2/accessToken",
    (
        "POST",
        "/v1.0/robot/oToMessages/batchSend",
        {
            "robotCode": "r",
            "userIds": ["u"],
            "msgKey": "sampleText",
            "msgParam": '{"content":"hi"}',
        },
    ),
)


@pytest.mark.parametrize(
    ("platform", "status", "body"),
    [
        (WECOM, 200, {"errcode": 40014, "errmsg": "invalid access_token"}),
        (WECOM, 200, {"errcode": 42001, "errmsg": "access_token expired"}),
        (WECOM, 200, {"errcode": 40001, "errmsg": "invalid credential"}),
        (FEISHU, 400, {"code": 99991661, "msg": "Missing access token for authorization."}),
        (FEISHU, 400, {"code": 99991663, "msg": "Invalid access token for authorization."}),
        (FEISHU, 400, {"code": 99991664, "msg": "Invalid tenant access token."}),
        (FEISHU, 200, {"code": 99991663, "msg": "Invalid access token for authorization."}),
        (DINGTALK, 400, {"code": "InvalidAuthentication", "message": "不合法的access_token"}),
        (DINGTALK, 401, {"code": "InvalidAuthentication", "message": "不合法的access_token"}),
        (DINGTALK, 200, {"errcode": 40014, "errmsg": "不合法的access_token"}),
    ],
)
def test_a_token_invalid_signal_refreshes_the_token_once_and_resends(
    fake_platforms, platform, status, body
):
    make, token_path, (method, path, payload) = platform
    client = make()
    client.tokens.get()
    fake_platforms.fail_next = [(status, body)]
    client.call(method, path, payload)
    assert len(fake_platforms.received(token_path)) == 2
    assert len(fake_platforms.received(path)) == 2


@pytest.mark.parametrize(
    ("platform", "status", "body", "permanent"),
    [
        (WECOM, 200, {"errcode": 45009, "errmsg": "api freq out of limit"}, False),
        (WECOM, 200, {"errcode": 81013, "errmsg": "user not found"}, True),
        (FEISHU, 400, {"code": 99991400, "msg": "frequency limited"}, True),
        (FEISHU, 400, {"code": 230020, "msg": "rate limited"}, False),
        (DINGTALK, 400, {"code": "InvalidParameter", "message": "userIds"}, True),
        (DINGTALK, 403, "<html>Forbidden</html>", True),
        (DINGTALK, 503, {"code": "ServiceUnavailable"}, False),
    ],
)
def test_other_errors_are_mapped_without_a_refresh(
    fake_platforms, platform, status, body, permanent
):
    make, token_path, (method, path, payload) = platform
    client = make()
    client.tokens.get()
    fake_platforms.fail_next = [(status, body)]
    with pytest.raises(DeliveryError) as failed:
        client.call(method, path, payload)
    assert failed.value.permanent is permanent
    assert len(fake_platforms.received(token_path)) == 1
