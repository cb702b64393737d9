import pytest


def test_it_reports_the_process_alive(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_it_is_ready_when_database_broker_and_cache_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": True, "broker": True, "cache": True}


@pytest.mark.django_db
def test_it_is_not_ready_when_the_broker_is_down(client):
    from assistant.celery import app
    from tests.e2e.worker import use_broker

    original = app.conf.broker_url
    use_broker("redis://127.0.0.1:9/0")  # nothing listens on port 9
    try:
        response = client.get("/readyz")
    finally:
        use_broker(original)
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] is False
