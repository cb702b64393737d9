"""The admin's sign-in is throttled per account and per address (django-axes)."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

LIMIT = 5
LOCKED = "Too many failed sign-ins from this account or address. Try again later."


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


@pytest.fixture
def alice():
    return MembershipFactory(user__username="alice", user__password="right-password").user


@pytest.fixture
def bob():
    return MembershipFactory(user__username="bob", user__password="bobs-password").user


def sign_in(client, username, password, address):
    return client.post(
        "/admin/login/",
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
        HTTP_ACCEPT_LANGUAGE="en",
    )


def signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def test_it_takes_the_right_password_after_fewer_failures_than_the_limit(client, alice):
    for _ in range(LIMIT - 1):
        assert sign_in(client, "alice", "wrong", "10.0.0.1").status_code == 200
    assert signed_in(sign_in(client, "alice", "right-password", "10.0.0.1"))


def test_it_locks_an_account_failing_from_many_addresses(client, alice, bob):
    for n in range(LIMIT):  # one failure from each address: no address reaches the limit
        sign_in(client, "alice", "wrong", f"10.0.1.{n}")

    refused = sign_in(client, "alice", "right-password", "10.0.2.1")
    assert refused.status_code == 429
    assert LOCKED in refused.content.decode()
    assert signed_in(sign_in(client, "bob", "bobs-password", "10.0.2.2"))


def test_it_locks_an_address_failing_for_many_accounts(client, alice, bob):
    for n in range(LIMIT):  # one failure for each name: no account reaches the limit
        sign_in(client, f"guess{n}", "wrong", "10.0.3.1")

    refused = sign_in(client, "alice", "right-password", "10.0.3.1")
    assert refused.status_code == 429
    assert LOCKED in refused.content.decode()
    assert signed_in(sign_in(client, "bob", "bobs-password", "10.0.3.2"))
    assert signed_in(sign_in(client, "alice", "right-password", "10.0.3.3"))


def test_it_shows_the_lockout_in_chinese(client, alice):
    for _ in range(LIMIT):
        sign_in(client, "alice", "wrong", "10.0.4.1")
    refused = client.post(
        "/admin/login/",
        {"username": "alice", "password": "right-password"},
        REMOTE_ADDR="10.0.4.1",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert refused.status_code == 429
    assert "登录失败次数过多" in refused.content.decode()


def test_it_lets_the_account_in_again_after_the_cool_off(client, alice, settings):
    settings.AXES_COOLOFF_TIME = timedelta(minutes=5)
    for _ in range(LIMIT):
        sign_in(client, "alice", "wrong", "10.0.5.1")
    assert sign_in(client, "alice", "right-password", "10.0.5.1").status_code == 429
    # The failures age past the cool-off (axes' database handler keeps them there).
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=6))
    assert signed_in(sign_in(client, "alice", "right-password", "10.0.5.1"))


def test_it_reads_the_limit_and_the_cool_off_from_the_environment():
    env = dict(os.environ, ADMIN_LOGIN_FAILURE_LIMIT="7", ADMIN_LOGIN_COOLOFF_MINUTES="2.5")
    code = "from django.conf import settings as s; print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "assistant.settings"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["7", "0:02:30"]
