import pytest

pytestmark = pytest.mark.django_db


def test_it_reports_the_process_alive(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_it_is_ready_and_reports_no_worker_when_none_runs(client, fake_ollama):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {"database": True, "broker": True, "cache": True, "worker": False, "model": True},
    }


def test_it_is_ready_and_reports_the_model_down(client, settings):
    settings.OLLAMA_URL = "http://127.0.0.1:9"  # nothing listens on port 9
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["model"] is False


def test_it_asks_an_openai_compatible_endpoint_for_its_models(client, fake_ollama, settings):
    settings.OLLAMA_URL = f"{fake_ollama.url}/v1"
    assert client.get("/readyz").json()["checks"]["model"] is True
    settings.OLLAMA_URL = f"{fake_ollama.url}/elsewhere/v1"  # the fake answers 404 there
    assert client.get("/readyz").json()["checks"]["model"] is False


def test_it_is_not_ready_when_the_broker_is_down(client, fake_ollama):
    from assistant.celery import app
    from tests.e2e.worker import use_broker

    original = app.conf.broker_url
    use_broker("redis://127.0.0.1:9/0")
    try:
        response = client.get("/readyz")
    finally:
        use_broker(original)
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["broker"] is False
