"""Splitting long answers to a platform's per-message limit."""

from __future__ import annotations

# Where a chunk may end, best first: a paragraph, a line, a sentence, a word.
BREAKS = ("\n\n", "\n", "。", "！", "？", ". ", "! ", "? ", "；", "; ", "，", ", ", " ")


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """Chunks of at most `max_bytes` UTF-8 bytes, cut at natural breaks, never mid-character."""
    chunks: list[str] = []
    rest = text
    while len(rest.encode()) > max_bytes:
        head = _fit(rest, max_bytes)
        cut = _last_break(head)
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest.strip() or not chunks:
        chunks.append(rest)
    return [c for c in chunks if c] or [""]


def _fit(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` within `max_bytes`, on a character boundary."""
    return text.encode()[:max_bytes].decode("utf-8", errors="ignore")


def _last_break(head: str) -> int:
    """Where to cut `head`: after the best break in its second half, else at its end."""
    for mark in BREAKS:
        at = head.rfind(mark)
        if at >= len(head) // 2:
            return at + len(mark)
    return len(head)
