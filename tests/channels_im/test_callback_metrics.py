"""Callbacks that carry no message are counted too: handshakes, events, polls, outages."""

import pytest
from django.db import OperationalError

import channels_im.views
from tests.callbacks import wecom_bot as robot
from tests.callbacks.wecom import wecom_post, wecom_text_xml, with_query
from tests.factories import BotFactory
from tests.scrape import scrape

pytestmark = pytest.mark.django_db


def counted(client, request: dict, platform: str) -> dict[str, float]:
    """The outcomes `request` was counted under, by how often."""
    before = scrape(client)
    client.generic(**request)
    change = scrape(client).since(before)
    return {
        dict(labels)["outcome"]: value
        for (name, labels), value in change.samples.items()
        if name == "im_callbacks_total" and dict(labels)["platform"] == platform
    }


def test_a_url_verification_counts_as_a_challenge(client, tenant_a):
    bot = BotFactory(
        tenant=tenant_a, platform="wecom_bot", credentials=dict(robot.ROBOT_CREDENTIALS)
    )
    assert counted(client, robot.verification_request(bot, "echo-1"), "wecom_bot") == {
        "challenge": 1
    }


def test_a_stream_poll_counts_as_a_poll(client, tenant_a):
    bot = BotFactory(
        tenant=tenant_a, platform="wecom_bot", credentials=dict(robot.ROBOT_CREDENTIALS)
    )
    assert counted(client, robot.refresh_request(bot, "stream-1"), "wecom_bot") == {"poll": 1}


def wecom_request(bot, xml: str) -> dict:
    query, body = wecom_post(bot.credentials, xml)
    path = with_query(bot.callback_path, query)
    return {"method": "POST", "path": path, "data": body, "content_type": "text/xml"}


def test_an_event_counts_as_ignored(client, wecom_bot):
    request = wecom_request(wecom_bot, wecom_text_xml("", msg_type="event"))
    assert counted(client, request, "wecom") == {"ignored": 1}


def test_a_database_outage_counts_as_unavailable(client, wecom_bot, monkeypatch):
    def database_down(bot, inbound):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(channels_im.views, "receive", database_down)
    request = wecom_request(wecom_bot, wecom_text_xml("hi"))
    assert counted(client, request, "wecom") == {"unavailable": 1}


def test_an_unknown_platform_in_the_url_counts_as_unknown(client):
    request = {"method": "POST", "path": "/callbacks/slack/9b6c7f4e-2f0a-4d3e-9a61-5f1d2c3b4a59/"}
    assert counted(client, request, "unknown") == {"unknown_bot": 1}
