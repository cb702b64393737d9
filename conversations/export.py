"""The log as a file: CSV for people (Excel), JSON Lines for programs; both streamed, in
constant memory whatever the row count. The admin's export action and the API's
`/api/v1/messages/export/` write the same files."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

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
    "status",
    "model",
    "content",
    "error",
    "queue_wait_ms",
    "first_token_ms",
    "total_ms",
    "prompt_tokens",
    "completion_tokens",
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
