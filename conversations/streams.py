"""Reading a model's streamed answer: what the person may see, and when to give up.

Both wire formats (Ollama's NDJSON, OpenAI's server-sent events) feed one `AnswerStream`,
which keeps three things apart:

- the answer, passed on as it grows;
- the reasoning of a thinking model (deepseek-r1, qwen3 …), whether the server sends it
  apart (Ollama's `message.thinking`, OpenAI-style `reasoning_content`) or inline as a
  leading `<think>…</think>` block: never shown, never stored, never fed back as context;
- the clock: silence is measured in tokens, not bytes, so a server that keeps the stream
  open with keep-alive comments and sends no token is given up after OLLAMA_TIMEOUT; and
  the question's deadline ends a generation that is still going (what it wrote so far
  is kept, marked as cut);
- a stop: once the stream's `hangup` is called (the asker's /stop), reading ends at the
  next line with what was written so far.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from common.hangup import Hangup

OPEN_THINK, CLOSE_THINK = "<think>", "</think>"
# An error is stored on rows the admin shows: a short excerpt, never a whole body.
MAX_ERROR_CHARS = 200
# done_reason of an answer cut by the question's deadline (Ollama's own: stop, length).
TIMEOUT = "timeout"
# done_reason of an answer its asker stopped.
STOPPED = "stopped"


class StreamBroken(Exception):
    """The stream failed or fell silent: transient (the caller's ModelUnavailable)."""


@dataclass
class Completion:
    """One finished answer; the timings are the client's, so they include network and
    queueing. `thought` says the model reasoned before (or instead of) answering."""

    content: str
    model: str
    done_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None
    first_token_ms: int | None
    total_ms: int
    thought: bool = False
    tokens_estimated: bool = False  # the counts are ours, the server reported none


@dataclass
class AnswerStream:
    """The answer as it accumulates, with the client-side clock.

    `on_delta(piece)` receives each new piece of the answer, `on_thinking()` is called
    once when the model starts reasoning, `on_token()` at every token, answer or
    reasoning; `deadline` is a time.monotonic() value; `hangup` closes the request when
    the answer is stopped.
    """

    model: str
    on_delta: Callable[[str], None] | None = None
    on_thinking: Callable[[], None] | None = None
    deadline: float | None = None
    hangup: Hangup = field(default_factory=Hangup)
    on_token: Callable[[], None] | None = None
    started: float = field(default_factory=time.monotonic)
    parts: list[str] = field(default_factory=list)
    first_token_ms: int | None = None
    thought: bool = False
    # Inline reasoning: None until the answer's first characters show whether it starts
    # with <think>; True while inside it; False once the answer proper runs.
    _in_think: bool | None = None
    _held: str = ""
    _last_token: float = field(default_factory=time.monotonic)

    def add(self, piece: str) -> None:
        """A piece of the content channel, which may open with an inline <think> block."""
        if not piece:
            return
        self._token()
        if self._in_think is False:
            self._show(piece)
            return
        self._held += piece
        if self._in_think is None:
            start = self._held.lstrip()
            if not OPEN_THINK.startswith(start[: len(OPEN_THINK)]):
                self._in_think = False
                self._show(self._held)
                self._held = ""
                return
            if len(start) < len(OPEN_THINK):
                return  # too little yet to tell
            self._in_think = True
            self._thinking()
        end = self._held.find(CLOSE_THINK)
        if end >= 0:
            self._in_think = False
            rest, self._held = self._held[end + len(CLOSE_THINK) :], ""
            self._show(rest)

    def add_thinking(self, piece: str) -> None:
        """A piece of reasoning the server sent apart from the answer."""
        if piece:
            self._token()
            self._thinking()

    def tick(self) -> None:
        """Called for every line the server sends; raise StreamBroken after too long
        without a token. Returns normally, so the caller may read on."""
        if time.monotonic() - self._last_token > settings.OLLAMA_TIMEOUT:
            raise StreamBroken(f"no tokens for {settings.OLLAMA_TIMEOUT:.0f} s")

    def cut_short(self) -> str | None:
        """Why to end the answer now, as its done_reason (STOPPED, TIMEOUT), or None."""
        if self.hangup.requested:
            return STOPPED
        if self.deadline is not None and time.monotonic() > self.deadline:
            return TIMEOUT
        return None

    def seconds_left(self) -> float | None:
        """Until the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def finish(
        self,
        model: str | None,
        done_reason: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
    ) -> Completion:
        if self._in_think is None:  # an answer shorter than "<think>"
            self._in_think = False
            self._show(self._held)
            self._held = ""
        return Completion(
            content="".join(self.parts),
            model=model or self.model,
            # Very old Ollama servers sent no reason for a natural stop.
            done_reason=done_reason or "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            first_token_ms=self.first_token_ms,
            total_ms=int((time.monotonic() - self.started) * 1000),
            thought=self.thought,
        )

    def _show(self, piece: str) -> None:
        if self.thought and not self.parts:
            piece = piece.lstrip()  # the blank line a model puts after its reasoning
        if not piece:
            return
        self.parts.append(piece)
        if self.on_delta is not None:
            self.on_delta(piece)

    def _thinking(self) -> None:
        if not self.thought and self.on_thinking is not None:
            self.on_thinking()
        self.thought = True

    def _token(self) -> None:
        if self.on_token is not None:
            self.on_token()
        self._last_token = time.monotonic()
        if self.first_token_ms is None:
            self.first_token_ms = int((self._last_token - self.started) * 1000)


def read_native(lines: Iterator[bytes], stream: AnswerStream) -> Completion:
    """Ollama NDJSON: chunks with `message.content` (and `message.thinking` when asked
    to think), then one `done: true` line with the token counts."""
    for line in lines:
        stream.tick()
        if (cut := stream.cut_short()) is not None:
            return stream.finish(None, cut, None, None)
        if not line.strip():
            continue
        chunk = decode(line)
        message = chunk.get("message") or {}
        stream.add_thinking(message.get("thinking") or "")
        stream.add(message.get("content") or "")
        if chunk.get("done"):
            return stream.finish(
                chunk.get("model"),
                chunk.get("done_reason"),
                chunk.get("prompt_eval_count"),
                chunk.get("eval_count"),
            )
    raise StreamBroken("model stream ended without a done line")


def read_openai(lines: Iterator[bytes], stream: AnswerStream) -> Completion:
    """OpenAI SSE: `data:` chunks, a usage-only chunk, then `data: [DONE]`; reasoning
    arrives as `reasoning_content` (or `reasoning`) where the server separates it."""
    model: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] = {}
    for line in lines:
        stream.tick()
        if (cut := stream.cut_short()) is not None:
            return stream.finish(model, cut, None, None)
        if not line.startswith(b"data:"):
            continue  # blank separators, keep-alive comments, `event:` lines
        data = line.removeprefix(b"data:").strip()
        if data == b"[DONE]":
            return stream.finish(
                model, finish_reason, usage.get("prompt_tokens"), usage.get("completion_tokens")
            )
        chunk = decode(data)
        model = chunk.get("model") or model
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            stream.add_thinking(delta.get("reasoning_content") or delta.get("reasoning") or "")
            stream.add(delta.get("content") or "")
            finish_reason = choice.get("finish_reason") or finish_reason
    raise StreamBroken("model stream ended without [DONE]")


def decode(line: bytes) -> dict[str, Any]:
    """One stream chunk; an `error` chunk means the model failed after the 200 went out.

    Nothing of a malformed line is quoted: an endpoint that is no model server may send
    internal data, and errors are shown in the admin."""
    try:
        chunk = json.loads(line)
    except ValueError as exc:
        raise StreamBroken(f"invalid JSON in the model stream ({len(line)} bytes)") from exc
    if not isinstance(chunk, dict):
        raise StreamBroken(f"unexpected chunk in the model stream: {type(chunk).__name__}")
    if "error" in chunk:
        raise StreamBroken(f"model failed mid-stream: {error_text(line) or 'no reason'}")
    return chunk


def error_text(raw: bytes) -> str:
    """Ollama's `error` text (native: a string; /v1: an object with `message`), printable
    and clipped; "" for any other body, which is never quoted: a proxy's page or an
    internal service's answer has no place in an error the admin shows."""
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return ""
    if isinstance(error, dict):
        error = error.get("message")
    return clip(error) if isinstance(error, str) else ""


def clip(text: str) -> str:
    """One line of printable text (no control or bidi characters), at most MAX_ERROR_CHARS."""
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "…"
