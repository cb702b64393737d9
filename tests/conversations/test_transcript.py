"""A conversation's admin page is its transcript: each question with its answer, who,
when, the model, tokens, timings, status and error; the lists link to it."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations import transcript
from conversations.models import Message
from tenants.audit_models import AuditEvent
from tests.factories import BotFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

LONG_CHINESE = "请问公司的差旅报销流程是怎样的？" * 40
ASKED = datetime(2026, 3, 2, 1, 30, 5, tzinfo=UTC)  # 09:30:05 in Asia/Shanghai


@pytest.fixture
def conversation(tenant_a):
    bot = BotFactory(tenant=tenant_a, name="helpdesk", platform="wecom")
    return ConversationFactory(bot=bot, chat_id="finance-group", user_id="zhangsan")


@pytest.fixture
def answered(conversation):
    question = MessageFactory(
        conversation=conversation, content=LONG_CHINESE, sender="zhangsan", status="answered",
        model="qwen2:1.5b", prompt_tokens=120, completion_tokens=48, tokens_estimated=True,
        queue_wait_ms=35, first_token_ms=850, total_ms=12_345, done_reason="length",
    )  # fmt: skip
    Message.objects.filter(pk=question.pk).update(created_at=ASKED)
    answer = MessageFactory(
        conversation=conversation, reply_to=question, role="assistant", external_id=None,
        content="先填写报销单，再交给财务部审核。", model="qwen2:1.5b", delivered_at=ASKED,
    )  # fmt: skip
    return question, answer


@pytest.fixture
def failed(conversation, answered):
    return MessageFactory(
        conversation=conversation, content="VPN 连不上", sender="lisi", status="failed",
        error="model: connection refused",
    )  # fmt: skip


def page_of(conversation):
    return reverse("admin:conversations_conversation_change", args=[conversation.pk])


def read(client, url, **query):
    response = client.get(url, query, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    return response


def test_it_shows_each_question_with_its_answer_and_figures(
    client, auditor_a, conversation, answered, failed
):
    client.force_login(auditor_a)
    response = read(client, page_of(conversation))
    page = response.content.decode()
    question, answer = answered
    exchanges = list(response.context["transcript"])
    assert [(e.question, e.answer) for e in exchanges] == [(question, answer), (failed, None)]
    for text in (
        LONG_CHINESE, "先填写报销单，再交给财务部审核。", "zhangsan", "2026-03-02 09:30:05",
        "helpdesk", "WeCom", "finance-group", "qwen2:1.5b", "120 / 48 (estimated)",
        "35 ms", "850 ms", "12.3 s", "length", "Answered",
        "VPN 连不上", "lisi", "Failed", "model: connection refused", "No answer.",
    ):  # fmt: skip
        assert text in page, text
    assert f'id="{transcript.anchor(question)}"' in page
    assert f'id="{transcript.anchor(answer)}"' in page


def test_an_exchange_shows_only_the_figures_it_has(failed):
    exchange = transcript.exchange(failed)
    assert exchange.answer is None
    assert exchange.figures == []


def test_each_message_in_the_list_links_to_its_place_in_the_transcript(
    client, auditor_a, conversation, answered
):
    client.force_login(auditor_a)
    page = read(client, reverse("admin:conversations_message_changelist")).content.decode()
    for message in answered:
        link = transcript.url(message)
        assert link == f"{page_of(conversation)}?message={message.pk}#message-{message.pk}"
        assert f'href="{link}"' in page
        path, _, anchor = link.partition("#")
        opened = read(client, path.split("?")[0], message=message.pk).content.decode()
        assert f'id="{anchor}"' in opened


def test_the_conversation_list_links_to_the_transcript(client, auditor_a, conversation):
    client.force_login(auditor_a)
    page = read(client, reverse("admin:conversations_conversation_changelist")).content.decode()
    assert f'href="{page_of(conversation)}"' in page


@pytest.fixture
def long_conversation(conversation):
    """PER_PAGE + 3 questions, each answered."""
    questions = Message.objects.bulk_create(
        MessageFactory.build(conversation=conversation, content=f"question {n}")
        for n in range(transcript.PER_PAGE + 3)
    )
    Message.objects.bulk_create(
        MessageFactory.build(
            conversation=conversation, reply_to=q, role="assistant", external_id=None
        )
        for q in questions
    )
    return questions


def test_a_long_transcript_pages_and_opens_at_the_linked_message(
    client, auditor_a, conversation, long_conversation
):
    client.force_login(auditor_a)
    url = page_of(conversation)
    first = read(client, url).context["transcript"]
    assert (first.number, first.paginator.num_pages) == (1, 2)
    assert first[0].question == long_conversation[0]
    last = long_conversation[-1]
    for message in (last, last.reply):
        shown = read(client, url, message=message.pk).context["transcript"]
        assert shown.number == 2
        assert shown[-1].question == last
    for odd in ({"message": "x"}, {"message": 10**9}, {"page": "many"}):
        assert read(client, url, **odd).context["transcript"].number == 1
    second = read(client, url, page=2).content.decode()
    assert "Earlier" in second and "page=1" in second


def test_opening_a_transcript_records_one_view(client, auditor_a, conversation, answered):
    client.force_login(auditor_a)
    read(client, page_of(conversation), message=answered[1].pk)
    views = AuditEvent.objects.filter(action=AuditEvent.Action.VIEW)
    assert [(e.object_type, e.object_id, e.actor_label) for e in views] == [
        ("conversations.conversation", str(conversation.pk), "audrey")
    ]


def test_another_tenants_transcript_is_as_if_it_did_not_exist(
    client, outsider, conversation, answered
):
    client.force_login(outsider)
    response = client.get(page_of(conversation), follow=True)
    missing = client.get(
        reverse("admin:conversations_conversation_change", args=[10**9]), follow=True
    )
    assert response.redirect_chain == [(reverse("admin:index"), 302)]
    assert response.redirect_chain == missing.redirect_chain
    assert LONG_CHINESE not in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW).exists()


def test_the_transcript_reads_in_chinese(client, auditor_a, conversation, answered):
    client.force_login(auditor_a)
    response = client.get(page_of(conversation), HTTP_ACCEPT_LANGUAGE="zh-hans")
    page = response.content.decode()
    assert "对话记录" in page and "首 Token 延迟" in page and "（估算）" in page


def test_it_reads_a_page_in_as_many_queries_however_long(
    client, auditor_a, conversation, long_conversation
):
    short = ConversationFactory(bot=conversation.bot)
    MessageFactory(conversation=short)
    client.force_login(auditor_a)
    read(client, page_of(short))  # Django's caches (content types …) filled

    def queries(url):
        with CaptureQueriesContext(connection) as done:
            read(client, url)
        return len(done)

    # Each question's answer comes in its join.
    assert queries(page_of(conversation)) == queries(page_of(short))


def test_a_redacted_exchange_says_so_and_keeps_its_figures(
    client, auditor_a, conversation, answered
):
    question, answer = answered
    Message.objects.filter(pk__in=[question.pk, answer.pk]).update(
        content="", error="", redacted_at=datetime(2026, 9, 1, 2, tzinfo=UTC)
    )
    client.force_login(auditor_a)
    page = read(client, page_of(conversation)).content.decode()
    assert page.count("Text removed by retention on 2026-09-01.") == 2
    assert LONG_CHINESE not in page and "120 / 48 (estimated)" in page
    listed = read(client, reverse("admin:conversations_message_changelist")).content.decode()
    assert f'<a href="{transcript.url(question)}">(redacted)</a>' in listed
