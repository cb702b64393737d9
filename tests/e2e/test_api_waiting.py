"""Clients waiting on answers through the REST API, against the web process as production
starts it (gunicorn, gunicorn.conf.py): they hold no thread, so everyone else is answered
as fast as ever, and each gets its answer the moment a real worker has it."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tenants.models import ApiKey

WAITING = 50
GENUINE = 20


@pytest.fixture
def bearer(tenant_a, key_for, fake_ollama):
    tenant_a.model_endpoint = fake_ollama.url
    tenant_a.rate_limit_per_minute = tenant_a.user_rate_limit_per_minute = 1000
    tenant_a.save()
    return {"Authorization": f"Bearer {key_for(tenant_a, *ApiKey.SCOPES)}"}


def post(url: str, bearer: dict[str, str], **body: object) -> requests.Response:
    return requests.post(f"{url}/api/v1/messages/", json=body, headers=bearer, timeout=60)


def test_clients_waiting_on_answers_leave_the_web_process_answering_at_once(spawn_web, bearer):
    url, port, log = spawn_web()
    # No worker runs: every question stays unanswered and every client waits its 6 s out.
    with ThreadPoolExecutor(WAITING) as pool:
        waiting = [
            pool.submit(post, url, bearer, user=f"u{n}", text="hi", wait=6) for n in range(WAITING)
        ]
        time.sleep(1.5)  # every client sent and waiting
        took = []
        for _ in range(GENUINE):
            started = time.monotonic()
            # Reads the database, as a callback does: a waiting client holds no connection.
            assert requests.get(f"{url}/api/v1/tenant/", headers=bearer, timeout=5).ok
            took.append(time.monotonic() - started)
        early = [w.result().status_code for w in waiting if w.done()]
        assert not early, (
            early,
            [w.result().text for w in waiting if w.done()][:2],
        )  # they really were waiting
        answers = [wait.result() for wait in waiting]
    assert max(took) < 1.0, took  # a thread per waiting client: seconds
    assert {answer.status_code for answer in answers} == {202}  # unanswered: poll it


def test_a_waiting_client_gets_its_answer_as_soon_as_a_real_worker_has_it(
    spawn_web, worker, bearer, fake_ollama
):
    fake_ollama.reply = "报销流程在 OA 系统里。"
    url, port, log = spawn_web()
    started = time.monotonic()
    answer = post(url, bearer, user="crm:1", text="报销流程？", wait=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["answer"]["text"] == "报销流程在 OA 系统里。"
    assert time.monotonic() - started < 30


def test_a_stream_from_a_real_worker_arrives_in_pieces_as_the_model_writes(
    spawn_web, spawn_worker, shared_cache, bearer, fake_ollama
):
    fake_ollama.reply = "一 二 三 四 五 六 七 八 九 十 " * 3
    fake_ollama.chunk_delay = 0.1  # three seconds of writing
    spawn_worker(CACHE_URL=shared_cache)  # the text so far travels through the cache
    url, port, log = spawn_web(CACHE_URL=shared_cache)
    sent = post(url, bearer, user="crm:1", text="数一数")
    stream = requests.get(
        f"{url}/api/v1/messages/{sent.json()['id']}/stream/",
        headers=bearer,
        stream=True,
        timeout=60,
    )
    events = [
        block
        for block in stream.iter_lines(delimiter=b"\n\n", decode_unicode=False)
        if block.strip()
    ]
    names = [block.split(b"\n")[0].decode() for block in events]
    assert names[-1] == "event: done" and names.count("event: delta") >= 2, names
    text = "".join(
        json.loads(block.split(b"\n")[1].removeprefix(b"data: "))["text"]
        for block in events
        if block.startswith(b"event: delta")
    )
    assert text == fake_ollama.reply
