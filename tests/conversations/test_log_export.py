"""The message list's export: exactly the rows its filters and search select, every page
of them, as CSV with a BOM or JSON Lines, streamed, and never another tenant's."""

import asyncio
import csv
import io
import json

import pytest
from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.http import StreamingHttpResponse
from django.urls import reverse

from conversations import export
from conversations.export import StreamedFile, pieces
from conversations.models import Message
from tenants.audit_models import AuditEvent
from tests.factories import BotFactory, ConversationFactory, MembershipFactory, MessageFactory

pytestmark = pytest.mark.django_db

MESSAGES = reverse("admin:conversations_message_changelist")
EXPORT = {kind: reverse(f"admin:conversations_message_export_{kind}") for kind in ("csv", "jsonl")}
ROWS = 130  # more than the list's page of 100


@pytest.fixture
def log(tenant_a, tenant_b):
    """ROWS questions of tenant A on two bots, and tenant B's look-alikes."""
    wecom = ConversationFactory(bot=BotFactory(tenant=tenant_a, name="helpdesk"), chat_id="c1")
    feishu = ConversationFactory(bot=BotFactory(tenant=tenant_a, platform="feishu"), chat_id="c2")
    Message.objects.bulk_create(
        MessageFactory.build(
            conversation=(wecom, feishu)[n % 2],
            content=f"报销问题 {n}" if n % 3 else f"VPN question {n}",
            sender=f"user-{n % 4}",
            status=("answered", "failed")[n % 5 == 0],
        )
        for n in range(ROWS)
    )
    other = ConversationFactory(bot=BotFactory(tenant=tenant_b, platform="feishu"), chat_id="c1")
    MessageFactory.create_batch(3, conversation=other, content="报销问题 of B", sender="user-1")
    return Message.objects.all()


def rows_of(response, kind):
    assert response.status_code == 200
    assert response.streaming and isinstance(response, StreamedFile)
    body = b"".join(response.streaming_content)
    if kind == "csv":
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert body.startswith("\ufeff".encode())  # Excel then reads UTF-8
        header, *rows = csv.reader(io.StringIO(body.decode("utf-8-sig")))
        return [dict(zip(header, row, strict=True)) for row in rows]
    assert response["Content-Type"] == "application/jsonl"
    return [json.loads(line) for line in body.decode().splitlines()]


def listed(client, query):
    """The pks of every row the list selects (its whole queryset, not its page)."""
    response = client.get(MESSAGES, query)
    assert response.status_code == 200
    return [row.pk for row in response.context["cl"].queryset]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
@pytest.mark.parametrize(
    "query",
    [
        {},
        {"q": "报销"},
        {"q": "vpn", "status__exact": "failed"},
        {"platform": "feishu", "user": "user-1"},
        {"chat": "c1", "from": "2020-01-01", "o": "-6.1"},  # ordered by sender, then date
    ],
)
def test_the_export_holds_exactly_what_the_list_selects(client, auditor_a, log, kind, query):
    client.force_login(auditor_a)
    expected = listed(client, query)
    assert expected
    exported = rows_of(client.get(EXPORT[kind], query, HTTP_ACCEPT_LANGUAGE="en"), kind)
    id_column = "ID" if kind == "csv" else "id"  # the CSV's header is the field's label
    assert [int(row[id_column]) for row in exported] == expected


def test_the_whole_log_exports_past_the_lists_page(client, auditor_a, log):
    client.force_login(auditor_a)
    assert len(rows_of(client.get(EXPORT["jsonl"]), "jsonl")) == ROWS


def test_a_row_exports_with_its_figures(client, auditor_a, tenant_a):
    question = MessageFactory(
        conversation=ConversationFactory(bot=BotFactory(tenant=tenant_a, name="helpdesk")),
        content="报销流程是什么？", prompt_tokens=120, completion_tokens=48,
        tokens_estimated=True, done_reason="length", total_ms=1234,
    )  # fmt: skip
    answer = MessageFactory(conversation=question.conversation, reply_to=question, role="assistant")
    client.force_login(auditor_a)

    def exported():
        return {row["id"]: row for row in rows_of(client.get(EXPORT["jsonl"]), "jsonl")}

    rows = exported()
    first = rows[question.pk]
    assert first["content"] == "报销流程是什么？" and first["bot"] == "helpdesk"
    assert (first["tokens_estimated"], first["done_reason"], first["total_ms"]) == (
        True,
        "length",
        1234,
    )
    assert (rows[answer.pk]["reply_to_id"], first["redacted_at"]) == (question.pk, None)
    Message.objects.filter(pk=question.pk).update(content="", redacted_at=question.created_at)
    redacted = exported()[question.pk]
    assert (redacted["content"], redacted["redacted_at"]) == ("", question.created_at.isoformat())


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
@pytest.mark.parametrize(
    "query",
    [{}, {"q": "of B"}, {"platform": "feishu"}, {"tenant__id__exact": "{b}"}, {"user": "user-1"}],
)
def test_no_export_holds_another_tenants_rows(client, auditor_a, tenant_b, log, kind, query):
    query = {key: value.format(b=tenant_b.pk) for key, value in query.items()}
    client.force_login(auditor_a)
    response = client.get(EXPORT[kind], query)
    assert "of B" not in b"".join(response.streaming_content).decode()


def test_a_member_of_both_tenants_exports_both_and_each_tenant_records_it(
    client, auditor_a, tenant_a, tenant_b, log
):
    MembershipFactory(user=auditor_a, tenant=tenant_b, role="auditor")
    client.force_login(auditor_a)
    rows = rows_of(client.get(EXPORT["csv"], {"q": "of B"}), "csv")
    assert len(rows) == 3
    events = AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).order_by("tenant_id")
    assert [(e.tenant_id, e.detail["rows"]) for e in events] == [(tenant_a.pk, 3), (tenant_b.pk, 3)]


def test_an_outsider_exports_only_their_own_tenant(client, outsider, log):
    client.force_login(outsider)
    rows = rows_of(client.get(EXPORT["jsonl"]), "jsonl")
    assert {row["content"] for row in rows} == {"报销问题 of B"}


def test_signed_out_or_with_a_bad_filter_there_is_no_file(client, auditor_a, log):
    response = client.get(EXPORT["csv"])
    assert response.status_code == 302 and "/login/" in response["Location"]
    client.force_login(auditor_a)
    bad = client.get(EXPORT["csv"], {"from": "<b>someday</b>"})
    assert bad.status_code == 400 and b"<b>someday</b>" in bad.content
    assert bad["Content-Type"] == "text/plain; charset=utf-8"  # shown, never run
    assert client.get(EXPORT["csv"], {"no_such_field": "1"}).status_code == 400
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).exists()


def lines(taken, count=1000):
    for n in range(count):
        taken.append(n)
        yield f"{n}\n"


def first_part_async(response):
    async def first():
        parts = aiter(response)
        part = await anext(parts)
        await parts.aclose()
        return part

    return async_to_sync(first)()


def test_under_asgi_the_file_goes_out_as_it_is_read():
    taken = []
    assert first_part_async(StreamedFile(lines(taken))) == b"0\n"
    assert taken == [0]


def test_rows_go_out_in_pieces_not_one_by_one():
    taken = []
    sent = pieces(lines(taken, count=1000), 100)
    assert next(sent) == "".join(f"{n}\n" for n in range(37))  # 101 characters: 100 and a line
    assert len(taken) == 37
    assert "".join(sent).endswith("998\n999\n")


def test_django_alone_reads_the_whole_file_first_under_asgi():
    """Why StreamedFile exists: when this fails, Django streams by itself and it can go."""
    taken = []
    with pytest.warns(Warning, match="must consume synchronous iterators"):
        first_part_async(StreamingHttpResponse(lines(taken)))
    assert len(taken) == 1000


@pytest.mark.django_db(transaction=True)
def test_the_asgi_application_streams_an_export_from_the_database(
    tenant_a, key_for, recwarn, monkeypatch
):
    """Django's ASGI handler, which serves the REST API in the web process (assistant.asgi,
    not imported here: it sets the process's environment): each batch reads the rows'
    cursor in the request's thread, and the rows arrive in many body messages, none of
    them read ahead."""
    conversation = ConversationFactory(bot=BotFactory(tenant=tenant_a))
    MessageFactory.create_batch(450, conversation=conversation, content="报销")
    monkeypatch.setattr(export, "PIECE", 4096)
    key = key_for(tenant_a, "logs:read")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/api/v1/messages/export/", "raw_path": b"",
        "query_string": b"format=jsonl", "root_path": "", "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000), "headers": [(b"authorization", f"Bearer {key}".encode())],
    }  # fmt: skip
    sent = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        sent.append(message)

    async_to_sync(ASGIHandler())(scope, receive, send)
    assert sent[0]["status"] == 200
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body" and m.get("body")]
    rows = [json.loads(line) for line in b"".join(bodies).decode().splitlines()]
    assert len(rows) == 450 and len(bodies) > 3
    assert not [w for w in recwarn if "must consume synchronous" in str(w.message)]
