"""The one door to the model: a streaming chat call with typed, retry-aware errors.

Speaks Ollama's native `/api/chat` and, for endpoints ending in `/v1`, the OpenAI-compatible
`/chat/completions`. It imports no models, so callers record outcomes on their own rows.
Errors are typed by HTTP status only: Ollama's error texts change between versions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from django.conf import settings

from common import http

DeltaCallback = Callable[[str], None]
Messages = list[dict[str, str]]

_MAX_ERROR_CHARS = 300
# Ample for Ollama's {"error": …}; a proxy's HTML error page need not be read whole.
_MAX_ERROR_BYTES = 4096
# A bad endpoint URL or unserialisable options stay bad on every retry.
_UNSENDABLE = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidJSONError,
)
# Ollama option -> OpenAI field; the rest (num_ctx, keep_alive …) has no OpenAI spelling.
_OPENAI_FIELDS = {
    "num_predict": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
}


class LLMError(Exception):
    """A model call failed; `permanent` says whether retrying can help."""

    permanent: bool = False

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class ModelUnavailable(LLMError):
    """Unreachable, busy, timed out or broken mid-stream: retry with backoff."""


class ModelRejected(LLMError):
    """The endpoint refused the request (unknown model, bad request): retrying won't help."""

    permanent = True


@dataclass
class Completion:
    """One finished reply; the timings are the client's, so they include network and queueing."""

    content: str
    model: str
    done_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None
    first_token_ms: int | None
    total_ms: int


def chat(
    endpoint: str,
    model: str,
    messages: Messages,
    *,
    options: dict[str, Any] | None = None,
    keep_alive: str | int | None = None,
    on_delta: DeltaCallback | None = None,
) -> Completion:
    """Stream one chat reply, passing each text piece to `on_delta` as it arrives.

    `num_predict` defaults to OLLAMA_NUM_PREDICT so that no reply runs unbounded.
    `keep_alive` only reaches native endpoints; `/v1` has no way to carry it.
    """
    options = {"num_predict": settings.OLLAMA_NUM_PREDICT, **(options or {})}
    base = endpoint.rstrip("/")
    stream = _Stream(model, on_delta)
    if base.endswith("/v1"):
        url, read = f"{base}/chat/completions", _read_openai
        body = _openai_body(model, messages, options)
    else:
        url, read = f"{base}/api/chat", _read_native
        body = _native_body(model, messages, options, keep_alive)
    with _open_stream(url, body) as response:
        return read(response.iter_lines(), stream)


@dataclass
class _Stream:
    """The reply as it accumulates, with the client-side clock."""

    model: str
    on_delta: DeltaCallback | None
    started: float = field(default_factory=time.monotonic)
    parts: list[str] = field(default_factory=list)
    first_token_ms: int | None = None

    def add(self, piece: str) -> None:
        if not piece:
            return
        if self.first_token_ms is None:
            self.first_token_ms = self._elapsed_ms()
        self.parts.append(piece)
        if self.on_delta is not None:
            self.on_delta(piece)

    def finish(
        self,
        model: str | None,
        done_reason: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
    ) -> Completion:
        return Completion(
            content="".join(self.parts),
            model=model or self.model,
            # Very old Ollama servers sent no reason for a natural stop.
            done_reason=done_reason or "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            first_token_ms=self.first_token_ms,
            total_ms=self._elapsed_ms(),
        )

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


def _native_body(
    model: str, messages: Messages, options: dict[str, Any], keep_alive: str | int | None
) -> dict[str, Any]:
    body = {"model": model, "messages": messages, "stream": True, "options": options}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return body


def _openai_body(model: str, messages: Messages, options: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body.update({name: options[key] for key, name in _OPENAI_FIELDS.items() if key in options})
    # Ollama's -1/-2 mean "unbounded"; OpenAI servers reject a negative max_tokens.
    if body.get("max_tokens", 0) < 0:
        del body["max_tokens"]
    return body


def probe(endpoint: str, timeout: float) -> None:
    """A cheap GET that any live endpoint answers (native: `/api/version`; `/v1`: `/models`),
    connecting and answering within `timeout` seconds each. Raises ModelUnavailable or
    ModelRejected as `chat` does."""
    base = endpoint.rstrip("/")
    url = f"{base}/models" if base.endswith("/v1") else f"{base}/api/version"
    try:
        with http.session().get(url, timeout=timeout, stream=True) as response:
            _raise_for_status(response)
    except _UNSENDABLE as exc:
        raise ModelRejected(f"cannot send the model request: {exc}") from exc
    except requests.RequestException as exc:
        raise ModelUnavailable(f"model endpoint unreachable: {exc}") from exc


@contextmanager
def _open_stream(url: str, body: dict[str, Any]) -> Iterator[requests.Response]:
    """POST and yield the open 2xx response; every transport failure becomes an LLMError.

    Read errors raised while the caller iterates the body are translated here too.
    """
    timeout = (settings.OLLAMA_CONNECT_TIMEOUT, settings.OLLAMA_TIMEOUT)
    try:
        with http.session().post(url, json=body, stream=True, timeout=timeout) as response:
            _raise_for_status(response)
            yield response
    except _UNSENDABLE as exc:
        raise ModelRejected(f"cannot send the model request: {exc}") from exc
    except requests.RequestException as exc:
        raise ModelUnavailable(f"model endpoint unreachable: {exc}") from exc


def _raise_for_status(response: requests.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    raw = next(response.iter_content(_MAX_ERROR_BYTES), b"")
    message = f"HTTP {status}: {_clip(_error_text(raw))}"
    # 408 and 429 are "not now" rather than "never".
    if 400 <= status < 500 and status not in (408, 429):
        raise ModelRejected(message, status=status)
    raise ModelUnavailable(message, status=status)


def _error_text(raw: bytes) -> str:
    """Ollama's `error` text (native: a string; /v1: an object with `message`), else the body."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return text
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) else text


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + "…"


def _decode(line: bytes) -> dict[str, Any]:
    """One stream chunk; an `error` chunk means the model failed after the 200 went out."""
    try:
        chunk = json.loads(line)
    except ValueError as exc:
        raise ModelUnavailable(f"invalid JSON in the model stream: {_clip(repr(line))}") from exc
    if not isinstance(chunk, dict):
        raise ModelUnavailable(f"unexpected chunk in the model stream: {_clip(repr(line))}")
    if "error" in chunk:
        raise ModelUnavailable(f"model failed mid-stream: {_clip(_error_text(line))}")
    return chunk


def _read_native(lines: Iterator[bytes], stream: _Stream) -> Completion:
    """Ollama NDJSON: content chunks, then one `done: true` line with the token counts."""
    for line in lines:
        if not line:
            continue
        chunk = _decode(line)
        stream.add((chunk.get("message") or {}).get("content") or "")
        if chunk.get("done"):
            return stream.finish(
                chunk.get("model"),
                chunk.get("done_reason"),
                chunk.get("prompt_eval_count"),
                chunk.get("eval_count"),
            )
    raise ModelUnavailable("model stream ended without a done line")


def _read_openai(lines: Iterator[bytes], stream: _Stream) -> Completion:
    """OpenAI SSE: `data:` chunks, a usage-only chunk, then `data: [DONE]`."""
    model: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] = {}
    for line in lines:
        if not line.startswith(b"data:"):
            continue  # blank separators, comments, `event:` lines
        data = line.removeprefix(b"data:").strip()
        if data == b"[DONE]":
            return stream.finish(
                model, finish_reason, usage.get("prompt_tokens"), usage.get("completion_tokens")
            )
        chunk = _decode(data)
        model = chunk.get("model") or model
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            stream.add((choice.get("delta") or {}).get("content") or "")
            finish_reason = choice.get("finish_reason") or finish_reason
    raise ModelUnavailable("model stream ended without [DONE]")
