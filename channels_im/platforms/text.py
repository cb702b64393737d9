"""Splitting long answers to a platform's per-message limit."""

from __future__ import annotations

# Where a chunk may end, best first: a paragraph, a line, a sentence, a word.
BREAKS = ("\n\n", "\n", "。", "！", "？", ". ", "! ", "? ", "；", "; ", "，", ", ", " ")
FENCE = "```"
CLOSE_FENCE = "\n" + FENCE


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """Chunks of at most `max_bytes` UTF-8 bytes, cut at natural breaks, never mid-character.

    A markdown code block cut in two is closed at the end of one chunk and opened again
    (same language) at the start of the next, so every chunk renders on its own.
    """
    chunks: list[str] = []
    rest = text
    while rest:
        head, rest = split_first(rest, max_bytes)
        chunks.append(head)
    return chunks or [""]


def split_first(text: str, max_bytes: int) -> tuple[str, str]:
    """The first chunk of `text` (see split_utf8) and what is left after it."""
    if len(text.encode()) <= max_bytes:
        return text, ""
    head = _fit(text, max_bytes - len(CLOSE_FENCE))
    cut = _last_break(head)
    chunk, rest = text[:cut].rstrip(), text[cut:].lstrip("\n")
    opener = _open_fence(chunk)
    # Reopen the block in the next chunk only if this one carried more than its fence
    # line; otherwise the rest would never get shorter.
    if opener is not None and chunk.strip() != opener:
        chunk += CLOSE_FENCE
        rest = f"{opener}\n{rest}"
        if len(rest.encode()) >= len(text.encode()):
            chunk, rest = chunk.removesuffix(CLOSE_FENCE), text[cut:].lstrip("\n")
    return chunk, rest


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


def _open_fence(chunk: str) -> str | None:
    """The fence line (e.g. "```python") of a code block still open at the end of `chunk`."""
    opener = None
    for line in chunk.split("\n"):
        if line.lstrip().startswith(FENCE):
            opener = None if opener is not None else line.strip()
    return opener
