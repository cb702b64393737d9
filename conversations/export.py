"""The log as a file: CSV for people (Excel), JSON Lines for programs; both streamed, in
constant memory whatever the row count. The admin's export and the API's
`/api/v1/messages/export/` write the same files, through `download`."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from common.asgi import pieces

from .models import Message

EXPORT_FIELDS = (
    "id",
    "created_at",
    "tenant",
    "bot",
    "conversation_id",
    "role",
    "sender",
    "external_id",
    "reply_to_id",
    "status",
    "model",
    "content",
    "error",
    "done_reason",
    "queue_wait_ms",
    "first_token_ms",
    "total_ms",
    "prompt_tokens",
    "completion_tokens",
    "tokens_estimated",
    "redacted_at",  # retention cleared content and error then
)
# Excel runs a cell that starts with one of these as a formula; message text is user input.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat(timespec="seconds")
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class _Echo:
    """A file-like sink: csv.writer hands back each line for the streaming response."""

    def write(self, line: str) -> str:
        return line


def csv_lines(queryset: QuerySet[Message]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    # The BOM tells Excel the file is UTF-8; without it Chinese text comes out garbled.
    yield "\ufeff"
    yield writer.writerow([str(Message._meta.get_field(f).verbose_name) for f in EXPORT_FIELDS])  # type: ignore[union-attr]
    for message in queryset.iterator(chunk_size=1000):
        yield writer.writerow([csv_cell(getattr(message, f)) for f in EXPORT_FIELDS])


def jsonl_lines(queryset: QuerySet[Message]) -> Iterator[str]:
    """One JSON object per row, with the same fields as the CSV, times in ISO 8601."""
    for message in queryset.iterator(chunk_size=1000):
        row = {field: _json_value(getattr(message, field)) for field in EXPORT_FIELDS}
        yield json.dumps(row, ensure_ascii=False) + "\n"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, int | float | str | bool):
        return value
    return str(value)


FORMATS: dict[str, tuple[Callable[[QuerySet[Message]], Iterator[str]], str]] = {
    "csv": (csv_lines, "text/csv; charset=utf-8"),
    "jsonl": (jsonl_lines, "application/jsonl"),
}


# Characters of a piece of the file: each piece is one send (and, for the REST API, one
# hop between its thread and the event loop), not each row.
PIECE = 64 * 1024


class StreamedFile(StreamingHttpResponse):
    """A download sent as it is read, in constant memory under ASGI as under WSGI.

    Under ASGI, Django's StreamingHttpResponse reads a synchronous iterator whole into a
    list before it sends a byte; this one takes one part at a time, in the request's own
    thread (`thread_sensitive`), where the rows' database cursor lives.
    """

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Synchronous: `download` gives it a generator.
        parts = cast(Iterator[bytes], self.streaming_content)
        take = sync_to_async(lambda: next(parts, None))
        while (part := await take()) is not None:
            yield part


def download(rows: QuerySet[Message], kind: str) -> StreamedFile:
    """`rows`, in their order, as a file to download: kind "csv" (with a BOM) or "jsonl"
    (KeyError for another), named messages-<local time>.<kind>."""
    lines, content_type = FORMATS[kind]
    body = pieces(lines(rows.select_related("tenant", "bot")), PIECE)
    response = StreamedFile(body, content_type=content_type)
    name = f"messages-{timezone.localtime():%Y%m%d-%H%M%S}.{kind}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
