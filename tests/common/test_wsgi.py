"""The handler the platforms' callbacks go through in the web process (common/wsgi.py):
the same views, none of the middleware."""

import pytest
from django.core.wsgi import get_wsgi_application
from django.test import RequestFactory

from common.wsgi import BareWSGIHandler
from conversations.models import Message
from tests.callbacks import wecom

pytestmark = pytest.mark.django_db(transaction=True)


def call(app, request: dict) -> tuple[str, dict[str, str], bytes]:
    environ = RequestFactory().generic(**request).environ
    started: dict = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=status, headers=dict(headers))

    body = app(environ, start_response)
    try:
        return started["status"], started["headers"], b"".join(body)
    finally:
        body.close()


def test_a_callback_is_stored_and_answered_without_the_middleware(wecom_bot, settings):
    settings.IM_DISPATCH = "notify"  # nothing to publish on PostgreSQL; elsewhere, on commit
    bare = call(BareWSGIHandler(), wecom.message_request(wecom_bot, "hi", "m1"))
    full = call(get_wsgi_application(), wecom.message_request(wecom_bot, "hi", "m2"))
    assert bare[0] == full[0] == "200 OK"
    assert bare[2] == full[2]
    assert "X-Frame-Options" in full[1] and "X-Frame-Options" not in bare[1]
    assert set(Message.objects.values_list("external_id", flat=True)) == {"m1", "m2"}


def test_a_forged_callback_is_refused_the_same_way(wecom_bot):
    status, _, _ = call(BareWSGIHandler(), wecom.message_request(wecom_bot, "hi", "m1", forge=True))
    assert status.startswith("403")
    assert not Message.objects.exists()
