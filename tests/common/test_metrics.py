"""GET /metrics: the token, the sum over processes, and the shared directory's upkeep."""

import fcntl
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from channels_im.platforms import PLATFORMS
from common import metrics
from common.metrics import store
from tests.callbacks.wecom import wecom_post, wecom_text_xml, with_query
from tests.scrape import Scrape, scrape

ROOT = Path(__file__).resolve().parents[2]


def test_it_serves_prometheus_text_format(client):
    metrics.STUCK_ROWS.labels("user").inc()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert Scrape.parse(response.content.decode()).value("im_stuck_rows_total", role="user") >= 1


def test_without_a_token_it_is_open(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Bearer s3cret-metrics-token-x", "Basic s3cret-metrics-token", ""],
)
def test_it_refuses_a_missing_or_wrong_token(client, settings, authorization):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"im_" not in response.content


def test_it_serves_the_right_bearer_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    response = client.get("/metrics", HTTP_AUTHORIZATION="bearer s3cret-metrics-token")
    assert response.status_code == 200


def test_it_takes_only_get(client):
    assert client.post("/metrics").status_code == 405


def count_in_another_process(amount: int) -> None:
    """A separate Python process counts `amount` stuck rows, then exits."""
    code = f"from common import metrics; metrics.STUCK_ROWS.labels('assistant').inc({amount})"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_counts_from_several_processes_add_up_and_outlive_them(client):
    before = scrape(client)
    metrics.STUCK_ROWS.labels("assistant").inc()
    count_in_another_process(2)
    count_in_another_process(4)
    change = scrape(client).since(before)
    # Both other processes have exited: their counts stay, or totals would go down.
    assert change.value("im_stuck_rows_total", role="assistant") == 7


@pytest.fixture
def directory(tmp_path):
    stale = tmp_path / "counter_oldhost-42.db"
    stale.write_bytes(b"\0" * 8)
    return tmp_path


def test_the_first_process_wipes_what_an_earlier_run_left(directory):
    lock = store.claim(directory)
    try:
        assert list(directory.glob("*.db")) == []
    finally:
        lock.close()


def test_a_process_joining_live_ones_keeps_their_files(directory):
    live = (directory / "lock").open("a")  # another process's hold: its own open file
    fcntl.flock(live, fcntl.LOCK_SH)
    try:
        lock = store.claim(directory)
        assert [path.name for path in directory.glob("*.db")] == ["counter_oldhost-42.db"]
        lock.close()
    finally:
        live.close()


def test_file_names_tell_hosts_apart():
    host, _, pid = store.process_identifier().rpartition("-")
    assert host and "_" not in host
    assert pid.isdecimal()


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("http://127.0.0.1:11434", "127.0.0.1:11434"),
        ("http://ollama/", "ollama:80"),
        ("https://models.example.com/v1", "models.example.com:443"),
        ("http://user:pw@host:8080/x?y=1", "host:8080"),
        ("http://host:notaport", "other"),
    ],
)
def test_an_endpoint_label_is_its_host_and_port(url, label):
    assert metrics.endpoint_label(url) == label


def test_endpoint_labels_are_bounded(monkeypatch):
    monkeypatch.setattr(metrics, "_endpoints", set())
    monkeypatch.setattr(metrics, "MAX_ENDPOINTS", 2)
    labels = [metrics.endpoint_label(f"http://host-{n}:11434") for n in range(4)]
    assert labels == ["host-0:11434", "host-1:11434", "other", "other"]
    assert metrics.endpoint_label("http://host-1:11434") == "host-1:11434"


@pytest.mark.django_db
def test_labels_never_carry_ids(client, wecom_bot):
    sender, msg_id = "zhang-wei-7731", "88112233445566"
    query, body = wecom_post(
        wecom_bot.credentials, wecom_text_xml("hi", msg_id=msg_id, sender=sender)
    )
    client.post(with_query(wecom_bot.callback_path, query), body, content_type="text/xml")
    client.post(f"/callbacks/no-such-platform/{uuid.uuid4()}/", b"x", content_type="text/xml")

    exported = scrape(client)
    for identifier in (sender, msg_id, str(wecom_bot.public_id), "no-such-platform"):
        assert identifier not in exported.text
    assert exported.label_values("platform") <= {*PLATFORMS, "unknown"}
    assert exported.label_values("role") <= {"user", "assistant"}
    # Every label is one of these, each with a closed set of values, or tenants' slugs
    # and model endpoints' host:port (bounded: test_endpoint_labels_are_bounded).
    names = {name for _, labels in exported.samples for name, _ in labels}
    assert names <= {
        "platform",
        "outcome",
        "queue",
        "role",
        "status",
        "tenant",
        "kind",
        "reason",
        "permanence",
        "endpoint",
        "how",
        "found",
        "le",
    }
