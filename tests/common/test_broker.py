"""The Redis broker's transport (common/broker.py): kombu's, with one client per channel
for the commands it sends outside its polling loop."""

import uuid

import pytest
from django.conf import settings
from kombu import Connection
from kombu.transport import redis

from assistant.celery import app
from common import broker

on_redis = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis"),
    reason="CELERY_BROKER_URL is not Redis (CI's is)",
)


@pytest.fixture
def built(monkeypatch) -> list[object]:
    """The synchronous clients kombu's channels build from now on."""
    built = []
    create = redis.Channel._create_client

    def counted(self, asynchronous=False):
        client = create(self, asynchronous)
        if not asynchronous:
            built.append(client)
        return client

    monkeypatch.setattr(redis.Channel, "_create_client", counted)
    return built


@pytest.fixture
def simple(built):
    """A queue of its own on the product's broker, declared (a command of its channel)."""
    with app.connection_for_write() as connection:
        simple = connection.SimpleQueue(f"broker-test-{uuid.uuid4().hex}")
        yield simple
        simple.queue.delete()
        simple.close()


@on_redis
def test_the_product_publishes_through_this_transport():
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, broker.Transport)


@pytest.mark.parametrize(
    "url, tls",
    [
        ("redis://broker.example:6379/1", False),
        ("rediss://broker.example:6380/1", True),  # kombu's default TLS options
        ("rediss://broker.example:6380/1?ssl_cert_reqs=required", True),
    ],
)
def test_a_redis_url_keeps_what_its_scheme_means_to_kombu(url, tls):
    connection = Connection(url)  # connects only when used
    assert isinstance(connection.transport, broker.Transport)
    assert bool(connection.ssl) is tls


@on_redis
def test_declaring_publishing_and_acknowledging_build_one_client(simple, built):
    for n in range(5):
        simple.put({"n": n})
    received = []
    for _ in range(5):
        message = simple.get(timeout=5)
        received.append(message.payload["n"])
        message.ack()
    assert received == [0, 1, 2, 3, 4]
    # kombu's own channel builds one for each command: the declaration, each put, get and ack.
    assert len(built) == 1


@on_redis
def test_a_channel_that_dropped_its_pools_gets_a_client_of_the_new_pool(simple, built):
    simple.put({"n": 1})
    simple.channel._disconnect_pools()  # what a fork does to the child's channels
    simple.put({"n": 2})
    assert len(built) == 2
    assert built[1].connection_pool is simple.channel.pool is not built[0].connection_pool
    assert [simple.get(timeout=5).payload["n"] for _ in range(2)] == [1, 2]
