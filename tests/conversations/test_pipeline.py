"""The reply pipeline against a real fake Ollama and a real fake WeCom API."""

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_im.platforms.base import InboundMessage
from conversations import delivery, pipeline
from conversations.claims import Claim, RetryLater, stuck
from conversations.models import Conversation, Message
from conversations.services import receive
from conversations.tasks import generate_reply, sweep_stuck_messages

pytestmark = pytest.mark.django_db


def inbound(text="hello", external_id=None, sender="zhangsan"):
    inbound.counter = getattr(inbound, "counter", 0) + 1
    return InboundMessage(
        external_id=external_id or f"m{inbound.counter}", sender=sender, chat=sender, text=text
    )


@pytest.fixture
def run(wecom_bot, fake_platforms, eager_celery, django_capture_on_commit_callbacks):
    """Receive a message as the callback would and run its tasks to the end."""

    def run_one(text="hello", **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return receive(wecom_bot, inbound(text, **kwargs))

    return run_one


def test_it_sends_the_tenant_model_system_prompt_and_options_to_ollama(run, wecom_bot, fake_ollama):
    tenant = wecom_bot.tenant
    tenant.model, tenant.system_prompt, tenant.num_ctx, tenant.temperature = (
        "gemma:2b",
        "Answer as ACME IT.",
        8192,
        0.2,
    )
    tenant.save()
    run("How do I print?")
    [request] = fake_ollama.requests
    assert request["model"] == "gemma:2b"
    assert request["messages"] == [
        {"role": "system", "content": "Answer as ACME IT."},
        {"role": "user", "content": "How do I print?"},
    ]
    assert request["options"]["num_ctx"] == 8192
    assert request["options"]["temperature"] == 0.2
    assert request["keep_alive"] == "5m"


@pytest.mark.parametrize(("keep_alive", "sent"), [("-1", -1), ("300", 300), ("1h30m", "1h30m")])
def test_it_sends_every_option_in_the_type_ollama_expects(
    run, wecom_bot, fake_ollama, keep_alive, sent
):
    """The fake refuses what Ollama refuses: "-1" as a string is 400 "missing unit"."""
    tenant = wecom_bot.tenant
    tenant.keep_alive, tenant.temperature = keep_alive, 1
    tenant.save()

    question = run()

    question.refresh_from_db()
    assert question.status == Message.Status.ANSWERED, question.error
    [request] = fake_ollama.requests
    assert request["keep_alive"] == sent and type(request["keep_alive"]) is type(sent)
    options = request["options"]
    assert {name: type(value) for name, value in options.items()} == {
        "num_ctx": int,
        "num_predict": int,
        "temperature": float,
    }


def test_it_sends_no_keep_alive_when_the_tenant_sets_none(run, wecom_bot, fake_ollama):
    wecom_bot.tenant.keep_alive = ""
    wecom_bot.tenant.save()
    run()
    assert "keep_alive" not in fake_ollama.requests[0]


@pytest.mark.parametrize(
    ("field", "stored", "named"),
    [
        ("model_endpoint", "http://10.0.0.5/internal?x=", "model_endpoint"),
        ("keep_alive", "forever", "keep_alive"),
        ("num_ctx", 2**31 - 1, "num_ctx"),
    ],
)
def test_it_never_sends_settings_saved_before_they_were_checked(
    run, wecom_bot, fake_ollama, fake_platforms, field, stored, named
):
    setattr(wecom_bot.tenant, field, stored)
    wecom_bot.tenant.save()  # as an older version, or the ORM, could

    question = run()

    question.refresh_from_db()
    assert (question.status, question.attempts) == (Message.Status.FAILED, 1)
    assert f"model settings need fixing: {named}: " in question.error
    assert fake_ollama.requests == []
    assert fake_platforms.wecom_texts()[0].startswith("Sorry")
    wecom_bot.refresh_from_db()
    assert named in wecom_bot.last_error


def test_it_records_timings_tokens_and_model_on_the_row(run, fake_ollama):
    question = run()
    question.refresh_from_db()
    assert question.status == Message.Status.ANSWERED
    assert question.model == "qwen2:1.5b"
    assert question.queue_wait_ms is not None and question.total_ms is not None
    assert question.first_token_ms is not None
    assert question.prompt_tokens > 0 and question.completion_tokens > 0
    assert question.reply.content == fake_ollama.reply


def test_it_includes_the_last_rounds_of_the_session(run, wecom_bot, fake_ollama):
    wecom_bot.tenant.context_max_rounds = 2
    wecom_bot.tenant.save()
    for n in range(4):
        fake_ollama.reply = f"answer {n}"
        run(f"question {n}")
    contents = [m["content"] for m in fake_ollama.requests[-1]["messages"]]
    assert contents == [
        "You are a helpful assistant.",
        "question 1",
        "answer 1",
        "question 2",
        "answer 2",
        "question 3",
    ]


def test_it_starts_a_new_session_after_the_timeout(run, wecom_bot, fake_ollama):
    run("old question")
    Conversation.objects.update(last_activity_at=timezone.now() - timedelta(hours=2))
    run("new question")
    assert Conversation.objects.count() == 2
    contents = [m["content"] for m in fake_ollama.requests[-1]["messages"]]
    assert "old question" not in contents


def test_it_retries_a_transient_failure_then_answers(run, fake_ollama, fake_platforms):
    fake_ollama.fail_status, fake_ollama.fail_times = 503, 2
    question = run()
    question.refresh_from_db()
    assert question.status == Message.Status.ANSWERED
    assert question.attempts == 3
    assert len(fake_ollama.requests) == 3
    assert fake_platforms.wecom_texts() == [fake_ollama.reply]


def test_it_apologises_when_the_model_stays_down(run, wecom_bot, fake_platforms, settings):
    settings.OLLAMA_MAX_RETRIES = 2
    wecom_bot.tenant.model_endpoint = "http://127.0.0.1:9"  # nothing listens there
    wecom_bot.tenant.save()
    question = run()
    question.refresh_from_db()
    assert question.status == Message.Status.FAILED
    assert question.attempts == 3
    assert "ConnectionError" in question.error or "connect" in question.error.lower()
    [sent] = fake_platforms.messages("wecom")
    assert sent["markdown"]["content"].startswith("Sorry")
    wecom_bot.refresh_from_db()
    assert wecom_bot.last_error.startswith("model:")


def test_it_does_not_retry_an_unknown_model(run, wecom_bot, fake_ollama, fake_platforms):
    fake_ollama.known_models = ["gemma:2b"]
    question = run()
    question.refresh_from_db()
    assert question.status == Message.Status.FAILED
    assert question.attempts == 1
    assert "404" in question.error
    assert len(fake_platforms.messages("wecom")) == 1


def test_it_fails_on_an_error_line_inside_a_200_stream(run, fake_ollama, settings):
    settings.OLLAMA_MAX_RETRIES = 0
    fake_ollama.midstream_error = "an error was encountered while running the model"
    question = run()
    question.refresh_from_db()
    assert question.status == Message.Status.FAILED
    assert "running the model" in question.error


def test_a_redelivered_task_never_answers_twice(run, fake_ollama, fake_platforms):
    question = run()
    generate_reply.apply(args=[question.pk])  # the broker delivers the same task again
    pipeline.answer(question.pk)
    assert len(fake_ollama.requests) == 1
    assert len(fake_platforms.messages("wecom")) == 1


def test_a_task_for_a_row_owned_by_another_worker_does_nothing(wecom_bot, fake_ollama):
    question = receive(wecom_bot, inbound())
    Message.objects.filter(pk=question.pk).update(
        status=Message.Status.ANSWERING, claimed_until=timezone.now() + timedelta(minutes=5)
    )
    pipeline.answer(question.pk)
    assert fake_ollama.requests == []


@pytest.fixture
def sweep(wecom_bot, fake_platforms, eager_celery, settings, django_capture_on_commit_callbacks):
    """Run the periodic sweep, with every row old enough to count as stuck, to the end."""
    settings.IM_STUCK_AFTER_SECONDS = 0

    def run_sweep():
        with django_capture_on_commit_callbacks(execute=True):
            return sweep_stuck_messages.apply().get()

    return run_sweep


def test_the_sweep_enqueues_stuck_rows_again(wecom_bot, fake_ollama, fake_platforms, sweep):
    lost = receive(wecom_bot, inbound())  # committed, but its task never reached a worker
    crashed = receive(wecom_bot, inbound())  # a worker died holding it
    Message.objects.filter(pk=crashed.pk).update(
        status=Message.Status.ANSWERING, claimed_until=timezone.now() - timedelta(seconds=1)
    )
    assert {row[0] for row in stuck()} == {lost.pk, crashed.pk}
    assert sweep() == 2
    assert Message.objects.filter(role="user", status="answered").count() == 2
    assert len(fake_platforms.messages("wecom")) == 2
    assert stuck() == []


def test_an_answer_stored_by_a_worker_that_then_died_is_sent_once_and_not_asked_again(
    wecom_bot, fake_ollama, fake_platforms, sweep
):
    question = receive(wecom_bot, inbound())
    first_worker = Claim.take(question.pk, Message.Role.USER)
    first_worker.answer("the stored answer", model="qwen2:1.5b").record()
    # ... and died before sending it; both claims run out.
    Message.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert sweep() == 2  # the question and its reply
    question.refresh_from_db()
    assert question.status == Message.Status.ANSWERED
    assert fake_ollama.requests == []
    assert fake_platforms.wecom_texts() == ["the stored answer"]
    assert stuck() == []


def test_the_sweep_leaves_fresh_rows_to_their_own_task(wecom_bot, settings):
    settings.IM_STUCK_AFTER_SECONDS = 120
    receive(wecom_bot, inbound())
    assert stuck() == []


def test_it_retries_a_failed_delivery(run, fake_platforms):
    fake_platforms.fail_next = [(502, {"errmsg": "bad gateway"})]
    question = run()
    reply = Message.objects.get(reply_to=question)
    assert reply.status == Message.Status.ANSWERED
    assert reply.attempts == 2
    assert len(fake_platforms.messages("wecom")) == 1


def test_it_records_a_permanent_delivery_failure_on_the_bot(run, wecom_bot, fake_platforms):
    fake_platforms.fail_next = [
        (200, {"errcode": 0, "access_token": "t", "expires_in": 7200}),
        (200, {"errcode": 60020, "errmsg": "not allow to access"}),
    ]
    question = run()
    reply = Message.objects.get(reply_to=question)
    assert reply.status == Message.Status.FAILED
    assert "60020" in reply.error
    wecom_bot.refresh_from_db()
    assert "60020" in wecom_bot.last_error
    question.refresh_from_db()  # the person saw nothing: the question says so
    assert (question.status, question.error) == ("failed", reply.error.join(["delivery: ", ""]))


def test_the_bots_last_error_is_set_at_the_first_failure(
    wecom_bot, fake_ollama, fake_platforms, settings
):
    fake_platforms.fail_next = [
        (200, {"errcode": 0, "access_token": "t", "expires_in": 7200}),
        (200, {"errcode": 45009, "errmsg": "api freq out of limit"}),
    ]
    question = receive(wecom_bot, inbound())
    with pytest.raises(RetryLater):  # the answer waits for the delivery queue
        pipeline.answer(question.pk)
    wecom_bot.refresh_from_db()
    assert "45009" in wecom_bot.last_error  # during the retries, not only after them


def test_over_the_user_limit_it_logs_and_tells_the_user_once(
    run, wecom_bot, fake_ollama, fake_platforms
):
    wecom_bot.tenant.user_rate_limit_per_minute = 2
    wecom_bot.tenant.save()
    for n in range(5):
        run(f"q{n}")
    assert [r.status for r in Message.objects.filter(role="user").order_by("id")] == [
        "answered",
        "answered",
        "rate_limited",
        "rate_limited",
        "rate_limited",
    ]
    assert len(fake_ollama.requests) == 2
    notices = [t for t in fake_platforms.wecom_texts() if "faster" in t]
    assert len(notices) == 1


def test_a_platforms_retry_uses_up_no_ones_limit(run, wecom_bot, fake_ollama):
    wecom_bot.tenant.user_rate_limit_per_minute = 2
    wecom_bot.tenant.save()
    run("q1", external_id="same")
    assert run("q1", external_id="same") is None  # the platform sent it again
    run("q2")
    statuses = Message.objects.filter(role="user").values_list("status", flat=True)
    assert list(statuses) == ["answered", "answered"]


def test_the_tenant_limit_counts_every_user(run, wecom_bot, fake_ollama):
    wecom_bot.tenant.rate_limit_per_minute = 3
    wecom_bot.tenant.save()
    for n in range(5):
        run(sender=f"user{n}")
    assert Message.objects.filter(role="user", status="rate_limited").count() == 2
    assert len(fake_ollama.requests) == 3


def test_messages_refused_by_the_user_limit_leave_the_tenant_limit_to_others(
    run, wecom_bot, fake_ollama
):
    wecom_bot.tenant.user_rate_limit_per_minute = 2
    wecom_bot.tenant.rate_limit_per_minute = 3
    wecom_bot.tenant.save()
    for n in range(4):
        run(f"spam {n}", sender="noisy")
    run("a fair question", sender="quiet")
    assert Message.objects.get(sender="quiet").status == Message.Status.ANSWERED


def test_an_empty_answer_is_retried_then_apologised_for(run, fake_ollama, fake_platforms, settings):
    settings.OLLAMA_MAX_RETRIES = 1
    fake_ollama.reply = ""
    question = run()
    question.refresh_from_db()
    assert question.status == Message.Status.FAILED
    assert "empty answer" in question.error
    assert len(fake_ollama.requests) == 2
    [sent] = fake_platforms.messages("wecom")
    assert sent["markdown"]["content"].startswith("Sorry")


def test_a_row_claimed_over_and_over_is_given_up_with_an_apology(
    wecom_bot, fake_ollama, fake_platforms, eager_celery, settings
):
    settings.OLLAMA_MAX_RETRIES = 2
    question = receive(wecom_bot, inbound())
    Message.objects.filter(pk=question.pk).update(attempts=3)  # three workers died on it
    pipeline.answer(question.pk)
    question.refresh_from_db()
    assert question.status == Message.Status.FAILED
    assert "gave up after 3 attempts" in question.error
    assert fake_ollama.requests == []
    assert fake_platforms.wecom_texts()[0].startswith("Sorry")


def test_an_unexpected_error_while_answering_never_strands_the_row(
    run, wecom_bot, monkeypatch, fake_platforms, settings
):
    settings.OLLAMA_MAX_RETRIES = 0

    def broken(question):
        raise KeyError("a bug")

    monkeypatch.setattr(pipeline, "build_messages", broken)
    question = run()
    question.refresh_from_db()
    assert question.status == Message.Status.FAILED
    assert "KeyError" in question.error
    assert fake_platforms.wecom_texts()[0].startswith("Sorry")


def test_a_misconfigured_bot_fails_delivery_for_good_and_says_why(run, wecom_bot, fake_platforms):
    wecom_bot.credentials = {**wecom_bot.credentials, "agent_id": "AgentId 1000002"}
    wecom_bot.save()
    question = run()
    reply = Message.objects.get(reply_to=question)
    assert reply.status == Message.Status.FAILED
    assert reply.attempts == 1
    wecom_bot.refresh_from_db()
    assert "agent_id" in wecom_bot.last_error


def test_a_retried_delivery_does_not_repeat_the_parts_already_sent(
    run, fake_ollama, fake_platforms
):
    fake_ollama.reply = " ".join(["第一部分。" * 150, "第二部分。" * 150, "第三部分。" * 150])
    # Token, part 1 accepted, then part 2 fails once with a transient error.
    fake_platforms.fail_next = [
        (200, {"errcode": 0, "access_token": "t0", "expires_in": 7200}),
    ]
    fake_platforms.valid_tokens.add("t0")
    original, calls = fake_platforms.wecom_send, itertools.count(1)

    def flaky(server, request):
        if next(calls) == 2:
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        return original(request)

    fake_platforms.routes[("POST", "/cgi-bin/message/send")] = flaky
    try:
        run("a long question")
    finally:
        fake_platforms.routes[("POST", "/cgi-bin/message/send")] = type(fake_platforms).wecom_send
    parts = fake_platforms.wecom_texts()
    assert len(parts) == len(set(parts)) >= 3  # every part once, none twice
    assert "".join(parts).replace(" ", "") == fake_ollama.reply.replace(" ", "")


def test_a_cache_outage_lets_messages_through(wecom_bot, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "common.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
        }
    }
    message = receive(wecom_bot, inbound())
    assert message.status == Message.Status.QUEUED


def test_a_worker_killed_while_sending_leaves_the_question_to_be_answered_again(
    wecom_bot, fake_ollama, fake_platforms, monkeypatch
):
    class Killed(BaseException):
        """What a time limit or a shutdown raises through every `except Exception`."""

    def killed(adapter, reply):
        raise Killed

    monkeypatch.setattr(type(wecom_bot.adapter), "send", killed)
    question = receive(wecom_bot, inbound())
    with pytest.raises(Killed):
        pipeline.answer(question.pk)
    question.refresh_from_db()
    # Not "answered" without an answer: once its claim runs out it is taken again.
    assert question.status == Message.Status.ANSWERING
    assert not Message.objects.filter(reply_to=question).exists()


def test_an_answer_that_fails_for_good_in_the_delivery_queue_fails_its_question(
    run, wecom_bot, fake_platforms
):
    fake_platforms.fail_next = [
        (200, {"errcode": 0, "access_token": "t", "expires_in": 7200}),
        (200, {"errcode": 45009, "errmsg": "api freq out of limit"}),  # retried later …
        (200, {"errcode": 60020, "errmsg": "not allow to access"}),  # … and refused for good
    ]
    question = run()
    reply = Message.objects.get(reply_to=question)
    assert (reply.status, reply.attempts) == ("failed", 2)
    question.refresh_from_db()
    assert question.status == Message.Status.FAILED and "60020" in question.error


@pytest.mark.parametrize("path", ["answer", "delivery queue"])
def test_an_answer_sent_while_the_database_was_down_is_not_sent_again(
    wecom_bot, fake_ollama, fake_platforms, monkeypatch, path
):
    """The send went out; the row saying so could not be written. Taken again once the
    database is back, the question is recorded answered, not asked or sent again."""
    from django.db import OperationalError

    question = receive(wecom_bot, inbound())
    if path == "delivery queue":  # the answer was stored, waiting for a retry of its send
        Claim.take(question.pk, Message.Role.USER).answer("the stored answer").record(
            status=Message.Status.QUEUED, claimed_until=None
        )
    real_succeed = Claim.succeed

    def database_down(claim, **fields):
        if claim.row.role == Message.Role.ASSISTANT:
            raise OperationalError("the connection is closed")
        real_succeed(claim, **fields)

    monkeypatch.setattr(Claim, "succeed", database_down)
    with pytest.raises(OperationalError):
        if path == "answer":
            pipeline.answer(question.pk)
        else:
            delivery.deliver(Message.objects.get(reply_to=question).pk)
    monkeypatch.setattr(Claim, "succeed", real_succeed)
    Message.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))  # runs out
    if path == "answer":
        pipeline.answer(question.pk)
    else:
        delivery.deliver(Message.objects.get(reply_to=question).pk)
    assert len(fake_platforms.messages("wecom")) == 1
    assert len(fake_ollama.requests) == (1 if path == "answer" else 0)
    reply = Message.objects.get(reply_to=question)
    assert reply.status == "answered" and reply.delivered_at is not None


def test_a_delivered_answer_after_a_retry_leaves_the_bot_working(run, wecom_bot, fake_ollama):
    """The bot's last success is its last delivered answer: newer than the error a retry
    recorded on the way, so the dashboard does not call the bot failing."""
    fake_ollama.fail_status, fake_ollama.fail_times = 503, 1
    run()
    wecom_bot.refresh_from_db()
    assert wecom_bot.last_error.startswith("model:")
    assert wecom_bot.last_success_at > wecom_bot.last_error_at


def test_a_bot_whose_answers_never_arrive_has_no_last_success(run, wecom_bot, fake_platforms):
    fake_platforms.fail_next = [
        (200, {"errcode": 0, "access_token": "t", "expires_in": 7200}),
        (200, {"errcode": 60020, "errmsg": "not allow to access"}),
    ]
    run()
    wecom_bot.refresh_from_db()
    assert wecom_bot.last_error_at is not None
    assert wecom_bot.last_success_at is None
