"""What every platform module must do, as one test mixin each platform's tests inherit.

A platform's test class supplies the hooks at the bottom; the tests above them are the
same for everyone: bad input gets the answer DESIGN.md promises and nothing is stored.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from channels_im.models import Bot
from conversations.models import Conversation, Message
from tests.factories import BotFactory
from tests.scrape import scrape


@pytest.mark.django_db
class AdapterContract:
    platform: str
    credentials: dict[str, Any]
    encrypted = True  # the platform encrypts bodies, so tampering is detectable
    uses_token = True  # the platform's send API needs an access token
    json_bodies = True  # a body can carry JSON escapes of characters no column stores
    answers_from_cache = False  # the platform reads its answer from the cache (a stream)

    @pytest.fixture
    def bot(self, tenant_a, fake_ollama, fake_platforms) -> Bot:
        tenant_a.model_endpoint = fake_ollama.url
        tenant_a.save()
        return BotFactory(
            tenant=tenant_a,
            platform=self.platform,
            name=f"{self.platform}-bot",
            credentials=dict(self.credentials),
        )

    @pytest.fixture
    def deliver(self, eager_celery, django_capture_on_commit_callbacks):
        """Call to run everything a callback enqueues, in-process."""

        def run(client, request: dict[str, Any]):
            with django_capture_on_commit_callbacks(execute=True):
                return client.generic(**request)

        return run

    def test_it_stores_a_genuine_message(self, client, bot):
        response = client.generic(**self.message_request(bot, "hello", "contract-1"))
        assert response.status_code == 200
        message = Message.objects.get()
        assert (message.content, message.external_id, message.status) == (
            "hello",
            "contract-1",
            "queued",
        )

    def test_it_answers_through_the_platform(
        self, client, bot, deliver, fake_ollama, fake_platforms
    ):
        fake_ollama.reply = "contract answer"
        assert deliver(client, self.message_request(bot, "hello", "c-2")).status_code == 200
        assert self.delivered_texts(fake_platforms, client, bot) == ["contract answer"]

    def test_it_rejects_a_forged_signature(self, client, bot):
        response = client.generic(**self.message_request(bot, "hi", "c-3", forge=True))
        assert response.status_code in (401, 403)
        assert not Message.objects.exists()

    def test_it_rejects_a_stale_timestamp(self, client, bot):
        response = client.generic(**self.message_request(bot, "hi", "c-4", stale=True))
        assert response.status_code in (401, 403)
        assert not Message.objects.exists()

    def test_it_rejects_tampered_ciphertext(self, client, bot):
        if not self.encrypted:
            pytest.skip("this platform does not encrypt bodies")
        response = client.generic(**self.message_request(bot, "hi", "c-5", tamper=True))
        assert response.status_code == 400
        assert not Message.objects.exists()

    def test_it_rejects_a_malformed_body(self, client, bot):
        response = client.generic(**self.malformed_request(bot))
        assert response.status_code == 400
        assert not Message.objects.exists()

    def test_it_rejects_an_oversized_body(self, client, bot, settings):
        request = self.message_request(bot, "x" * 2000, "c-big")
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(request["data"]) - 1
        assert client.generic(**request).status_code == 400
        assert not Message.objects.exists()

    def test_it_cleans_text_the_database_cannot_store(self, client, bot):
        if not self.json_bodies:
            pytest.skip("XML cannot carry a NUL or a lone surrogate: the parser refuses it")
        response = client.generic(**self.message_request(bot, "a\x00b\udc00c", "c-nul"))
        assert response.status_code == 200
        assert Message.objects.get().content == "ab\ufffdc"

    def test_it_refuses_an_identifier_longer_than_its_column(self, client, bot):
        response = client.generic(**self.message_request(bot, "hi", "m" * 300))
        assert response.status_code == 400
        assert not Message.objects.exists()
        assert not Conversation.objects.exists()

    def test_with_the_cache_down_a_genuine_message_is_still_stored(self, client, bot, settings):
        if self.answers_from_cache:
            pytest.skip("this platform's answer lives in the cache")
        settings.CACHES = {
            "default": {
                "BACKEND": "common.cache.RedisCache",
                "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
            }
        }
        response = client.generic(**self.message_request(bot, "hello", "c-cache"))
        assert response.status_code == 200
        assert Message.objects.get().content == "hello"

    def test_it_answers_a_duplicate_once(self, client, bot, deliver, fake_ollama, fake_platforms):
        for _ in range(3):
            assert deliver(client, self.message_request(bot, "hi", "c-dup")).status_code == 200
        assert Message.objects.filter(role="user").count() == 1
        assert len(fake_ollama.requests) == 1
        assert len(self.delivered_texts(fake_platforms, client, bot)) == 1

    def test_it_counts_each_callback_by_outcome_and_times_its_ack(self, client, bot):
        bot.tenant.user_rate_limit_per_minute = 1
        bot.tenant.save()
        unknown = self.message_request(bot, "hi", "c-m6")
        unknown["path"] = unknown["path"].replace(str(bot.public_id), str(uuid.uuid4()))
        requests = {
            "accepted": self.message_request(bot, "hi", "c-m1"),
            "duplicate": self.message_request(bot, "hi", "c-m1"),
            "rate_limited": self.message_request(bot, "hi", "c-m2"),
            "bad_signature": self.message_request(bot, "hi", "c-m3", forge=True),
            "stale": self.message_request(bot, "hi", "c-m4", stale=True),
            "malformed": self.malformed_request(bot),
            "unknown_bot": unknown,
        }
        before = scrape(client)
        for request in requests.values():
            client.generic(**request)
        change = scrape(client).since(before)
        counted = {
            outcome: change.value("im_callbacks_total", platform=self.platform, outcome=outcome)
            for outcome in requests
        }
        assert counted == dict.fromkeys(requests, 1)
        timed = change.value("im_callback_ack_seconds_count", platform=self.platform)
        assert timed == len(requests)

    def test_it_answers_404_for_an_unknown_bot(self, client, bot):
        request = self.message_request(bot, "hi", "c-6")
        request["path"] = request["path"].replace(
            str(bot.public_id), "00000000-0000-4000-8000-000000000000"
        )
        assert client.generic(**request).status_code == 404

    def test_it_refreshes_an_expired_token_and_resends(self, client, bot, deliver, fake_platforms):
        if not self.uses_token:
            pytest.skip("this platform's replies need no access token")
        deliver(client, self.message_request(bot, "one", "c-7"))
        fake_platforms.expire_all_tokens()
        deliver(client, self.message_request(bot, "two", "c-8"))
        assert len(self.delivered_texts(fake_platforms, client, bot)) == 2
        assert Message.objects.filter(role="assistant", status="answered").count() == 2

    # --- hooks each platform supplies ---------------------------------------------------
    def message_request(
        self,
        bot: Bot,
        text: str,
        msg_id: str,
        *,
        forge: bool = False,
        stale: bool = False,
        tamper: bool = False,
    ) -> dict[str, Any]:
        """Keyword arguments for `client.generic` carrying one signed user message."""
        raise NotImplementedError

    def malformed_request(self, bot: Bot) -> dict[str, Any]:
        raise NotImplementedError

    def delivered_texts(self, fake_platforms, client, bot: Bot) -> list[str]:
        """The answer texts the fake platform received (or the chat shows) so far."""
        raise NotImplementedError
