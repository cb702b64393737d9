import os
import shutil
import sys
import tempfile

import pytest

from tenants.models import ApiKey
from tests.factories import (
    ApiKeyFactory,
    BotFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)
from tests.fakes.platforms import FakePlatforms

# Each test run and the worker processes it starts (which inherit the variable) count
# their metrics in a directory of their own, so runs side by side never add up each
# other's counts. Set here, before the first import of common.metrics, which takes the
# directory as it loads.
assert "common.metrics" not in sys.modules, "common.metrics was imported before the tests set it up"
METRICS_DIR = tempfile.mkdtemp(prefix="test-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR


@pytest.fixture(scope="session", autouse=True)
def _private_metrics_directory():
    yield
    shutil.rmtree(METRICS_DIR, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _private_embedded_broker(tmp_path_factory):
    """With the embedded broker, each test run (and its workers) gets its own folder, so
    two runs side by side never take each other's tasks."""
    from assistant.celery import app

    options = app.conf.broker_transport_options
    if "data_folder_in" not in options:
        yield
        return
    folder = tmp_path_factory.mktemp("broker")
    (folder / "processed").mkdir()
    os.environ["CELERY_BROKER_DIR"] = str(folder)  # inherited by worker processes
    app.conf.broker_transport_options = {
        **options,
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
    }
    yield
    app.conf.broker_transport_options = options


@pytest.fixture(scope="session")
def platform_server():
    with FakePlatforms() as server:
        yield server


@pytest.fixture
def fake_platforms(platform_server, settings):
    """The platforms' APIs, a real HTTP server; every *_API_BASE points at it."""
    platform_server.reset()
    for name in ("WECOM_API_BASE", "DINGTALK_API_BASE", "DINGTALK_OAPI_BASE", "FEISHU_API_BASE"):
        setattr(settings, name, platform_server.url)
    return platform_server


@pytest.fixture(scope="session")
def ollama_server():
    from tests.fakes.ollama import FakeOllama

    with FakeOllama() as server:
        yield server


@pytest.fixture
def fake_ollama(ollama_server, settings):
    ollama_server.reset()
    settings.OLLAMA_URL = ollama_server.url
    return ollama_server


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    from channels_im.bot_cache import forget_all
    from channels_im.platforms.client import TokenCache

    cache.clear()
    forget_all()
    TokenCache.forget_all()
    yield


@pytest.fixture(autouse=True)
def _plain_static(settings):
    # Production's manifest storage needs collectstatic; rendering admin pages does not.
    backend = "django.contrib.staticfiles.storage.StaticFilesStorage"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": backend}}


@pytest.fixture
def eager_celery(settings):
    """Tasks run in-process when enqueued (unit tests; the e2e tests use a real worker),
    the request enqueueing a question's itself: no worker dispatches (dispatch.py)."""
    from assistant.celery import app

    settings.IM_DISPATCH = "publish"

    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


@pytest.fixture
def tenant_a(db):
    return TenantFactory(slug="tenant-a", name="Tenant A")


@pytest.fixture
def tenant_b(db):
    return TenantFactory(slug="tenant-b", name="Tenant B")


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_superuser=True)


@pytest.fixture
def admin_a(tenant_a):
    """A tenant admin of tenant A only."""
    return MembershipFactory(user__username="alice", tenant=tenant_a).user


@pytest.fixture
def auditor_a(tenant_a):
    return MembershipFactory(user__username="audrey", tenant=tenant_a, role="auditor").user


@pytest.fixture
def outsider(tenant_b):
    """Charlie: a tenant admin of tenant B, who must never see tenant A's data."""
    return MembershipFactory(user__username="charlie", tenant=tenant_b).user


@pytest.fixture
def wecom_bot(tenant_a, fake_ollama):
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.save()
    return BotFactory(tenant=tenant_a, platform="wecom", name="helpdesk")


@pytest.fixture
def key_for(db):
    """A raw API key of `tenant` with `scopes`."""

    def make(tenant, *scopes: str) -> str:
        raw = ApiKey.generate()
        ApiKeyFactory(tenant=tenant, key=raw, scopes=list(scopes))
        return raw

    return make
