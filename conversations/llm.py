"""The one door to the model: a streaming chat call with typed, retry-aware errors.

Speaks Ollama's native `/api/chat` and, for endpoints ending in `/v1`, the OpenAI-compatible
`/chat/completions`; reading the stream is `streams.py`'s. It imports no models, so callers
record outcomes on their own rows. Errors are typed by HTTP status only: Ollama's error
texts change between versions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from itertools import islice
from typing import Any

import requests
from django.conf import settings

from common import http, metrics
from common.hangup import Hangup

from .streams import (
    STOPPED,
    TIMEOUT,
    AnswerStream,
    Completion,
    StreamBroken,
    error_text,
    read_native,
    read_openai,
)

__all__ = [
    "STOPPED",
    "Completion",
    "LLMError",
    "ModelRejected",
    "ModelUnavailable",
    "chat",
    "metadata",
]

Messages = list[dict[str, str]]

# Ample for Ollama's {"error": …}; a proxy's HTML error page need not be read whole.
_MAX_ERROR_BYTES = 4096
# Lines read after the end marker, and how long to wait for the body's end: a server
# sends none, and ends the body at once.
_MAX_TRAILING_LINES, _FINISH_SECONDS = 8, 0.5
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
# (endpoint, model) pairs that refused `think`: asked without it from then on.
_NO_THINK: set[tuple[str, str]] = set()


class LLMError(Exception):
    """A model call failed; `permanent` says whether retrying can help, and `notice`
    names what to tell the person where the generic apology would mislead
    (conversations.texts)."""

    permanent: bool = False
    notice: str = ""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class ModelUnavailable(LLMError):
    """Unreachable, busy, timed out or broken mid-stream: retry with backoff."""


class ModelRejected(LLMError):
    """The endpoint refused the request (unknown model, bad request): retrying won't help."""

    permanent = True


class ThoughtTooLong(ModelRejected):
    """A reasoning model spent its whole answer budget thinking: the same question would
    do the same again."""

    notice = "thought_too_long"


def chat(
    endpoint: str,
    model: str,
    messages: Messages,
    *,
    options: dict[str, Any] | None = None,
    keep_alive: str | int | None = None,
    on_delta: Callable[[str], None] | None = None,
    on_thinking: Callable[[], None] | None = None,
    deadline: float | None = None,
    hangup: Hangup | None = None,
    on_token: Callable[[], None] | None = None,
) -> Completion:
    """Stream one chat answer, passing each new piece of it to `on_delta`.

    `num_predict` defaults to OLLAMA_NUM_PREDICT so that no answer runs unbounded.
    `keep_alive` only reaches native endpoints; `/v1` has no way to carry it. A native
    endpoint is asked to `think` apart from the answer, unless the model refused that
    before; `on_thinking()` is called when the model starts reasoning, `on_token()` at
    every token (the answer is alive). At `deadline`
    (time.monotonic()) the answer so far is returned with done_reason "timeout"; once
    `hangup()` is called (from any thread) the request is closed at once, also while the
    model has not answered yet, and the answer so far is returned with done_reason
    "stopped" (the model is not asked at all if that happened before the call).
    Raises ModelUnavailable (retry) or ModelRejected (do not). The call's timings, or its
    error by endpoint, are counted for /metrics.
    """
    options = {"num_predict": settings.OLLAMA_NUM_PREDICT, **(options or {})}
    stream = AnswerStream(
        model, on_delta, on_thinking, deadline, hangup or Hangup(), on_token=on_token
    )
    try:
        completion = _answer(endpoint.rstrip("/"), model, messages, options, keep_alive, stream)
    except LLMError as exc:
        permanence = metrics.permanence(exc.permanent)
        metrics.MODEL_ERRORS.labels(metrics.endpoint_label(endpoint), permanence).inc()
        raise
    if completion.first_token_ms is not None:
        metrics.FIRST_TOKEN_SECONDS.observe(completion.first_token_ms / 1000)
    metrics.MODEL_SECONDS.observe(completion.total_ms / 1000)
    return completion


def _answer(
    base: str,
    model: str,
    messages: Messages,
    options: dict[str, Any],
    keep_alive: str | int | None,
    stream: AnswerStream,
) -> Completion:
    """`chat` at a native or an OpenAI-compatible endpoint (`base`, no trailing slash)."""
    if base.endswith("/v1"):
        body = _openai_body(model, messages, options)
        return _run(f"{base}/chat/completions", body, read_openai, stream)
    think = (base, model) not in _NO_THINK
    body = _native_body(model, messages, options, keep_alive, think=think)
    try:
        return _run(f"{base}/api/chat", body, read_native, stream)
    except ModelRejected as exc:
        if not think or exc.status != 400:
            raise
    # A model that cannot think (or an Ollama older than `think`) refuses it with a 400.
    _NO_THINK.add((base, model))
    body.pop("think")
    return _run(f"{base}/api/chat", body, read_native, stream)


def _run(
    url: str,
    body: dict[str, Any],
    read: Callable[[Iterator[bytes], AnswerStream], Completion],
    stream: AnswerStream,
) -> Completion:
    if stream.hangup.requested:  # before the request went out: the model used nothing
        return stream.finish(None, STOPPED, 0, 0)
    try:
        with _open_stream(url, body, stream) as response:
            lines = response.iter_lines()
            try:
                completion = read(lines, stream)
            except StreamBroken as exc:
                raise ModelUnavailable(str(exc)) from exc
            if completion.done_reason not in (STOPPED, TIMEOUT):
                _finish_body(response, lines)
    except LLMError:
        if not stream.hangup.requested:
            raise
        # The hangup closed the connection under the reader: a stop, not a failure.
        return stream.finish(None, STOPPED, None, None)
    if completion.done_reason == STOPPED:
        return completion
    if completion.thought and not completion.content.strip():
        if completion.done_reason == TIMEOUT:
            raise ModelUnavailable("no answer within the time budget: the model was thinking")
        raise ThoughtTooLong("the model spent its whole answer budget thinking")
    return completion


def _finish_body(response: requests.Response, lines: Iterator[bytes]) -> None:
    """Read the body to its end after the answer's last line: a server ends it right
    there, and a connection read to the end goes back to the pool for the next question
    (one left unread is closed: a new TCP, or TLS, connection for every answer). A few
    lines and _FINISH_SECONDS at most, so that a server slow to end it holds up no
    answer; a failure here is no failure of the answer, which is complete. (urllib3 sets
    the socket's timeout again for the connection's next request.)"""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    with suppress(requests.RequestException, OSError):
        if sock is not None:
            sock.settimeout(_FINISH_SECONDS)
        for _ in islice(lines, _MAX_TRAILING_LINES):
            pass


def _native_body(
    model: str,
    messages: Messages,
    options: dict[str, Any],
    keep_alive: str | int | None,
    *,
    think: bool,
) -> dict[str, Any]:
    body = {"model": model, "messages": messages, "stream": True, "options": options}
    if think:
        body["think"] = True
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


def metadata(endpoint: str, path: str, timeout: float, body: dict[str, Any] | None = None) -> Any:
    """The JSON answer to one metadata request (`/api/tags`, `/api/show`, `/models` …):
    GET `path` of the endpoint, or POST `body` to it, connecting and answering within
    `timeout` seconds each. Raises ModelUnavailable or ModelRejected as `chat` does, and
    ModelRejected for an answer that is not JSON (no model server answers so)."""
    url = endpoint.rstrip("/") + path
    method = "GET" if body is None else "POST"
    try:
        with http.session().request(method, url, json=body, timeout=timeout) as response:
            _raise_for_status(response)
            content = response.content
    except _UNSENDABLE as exc:
        raise ModelRejected(f"cannot send the model request: {exc}") from exc
    except requests.RequestException as exc:
        raise ModelUnavailable(f"model endpoint unreachable: {_transport_reason(exc)}") from exc
    try:
        return json.loads(content)
    except ValueError as exc:
        raise ModelRejected(f"{path}: the answer is not JSON") from exc


def loaded_models(endpoint: str, timeout: float) -> set[str] | None:
    """The models a native Ollama endpoint holds in memory (`/api/ps`), as "name:tag";
    None where it cannot tell: an OpenAI-compatible endpoint, an error, an odd answer.
    A model not among them is loaded by the next request for it, which waits meanwhile."""
    if endpoint.rstrip("/").endswith("/v1"):
        return None
    try:
        answer = metadata(endpoint, "/api/ps", timeout)
    except LLMError:
        return None
    models = answer.get("models") if isinstance(answer, dict) else None
    if not isinstance(models, list):
        return None
    return {m.get("model") or m.get("name") or "" for m in models if isinstance(m, dict)}


@contextmanager
def _open_stream(
    url: str, body: dict[str, Any], stream: AnswerStream
) -> Iterator[requests.Response]:
    """POST and yield the open 2xx response; every transport failure becomes an LLMError.

    A read waits OLLAMA_TIMEOUT at most, and no longer than the question's time left: a
    model still loading sends nothing, and the deadline must hold all the same. Read
    errors raised while the caller iterates the body are translated here too. The
    stream's hangup may close the request until its response is closed.
    """
    read = settings.OLLAMA_TIMEOUT
    if (seconds_left := stream.seconds_left()) is not None:
        read = max(min(read, seconds_left), 0.1)
    timeout = (settings.OLLAMA_CONNECT_TIMEOUT, read)
    try:
        with (
            stream.hangup.armed(),
            http.session().post(url, json=body, stream=True, timeout=timeout) as response,
        ):
            _raise_for_status(response)
            yield response
    except _UNSENDABLE as exc:
        raise ModelRejected(f"cannot send the model request: {exc}") from exc
    except requests.RequestException as exc:
        raise ModelUnavailable(f"model endpoint unreachable: {_transport_reason(exc)}") from exc


def _transport_reason(exc: BaseException) -> str:
    """The failure's type, and the OS's words for it ("Connection refused") if any.

    Not the exception's text: urllib3 quotes what the peer sent (a BadStatusLine, an
    InvalidChunkLength), and an endpoint that is no model server may send internal data.
    """
    chain = [exc]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) and len(chain) < 10:
        chain.append(cause)
    detail = next((e.strerror for e in chain if isinstance(e, OSError) and e.strerror), None)
    inner = type(chain[-1]).__name__
    return f"{type(exc).__name__} ({detail or inner})"


def _raise_for_status(response: requests.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    raw = next(response.iter_content(_MAX_ERROR_BYTES), b"")
    text = error_text(raw)
    message = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    # 408 and 429 are "not now" rather than "never".
    if 400 <= status < 500 and status not in (408, 429):
        raise ModelRejected(message, status=status)
    raise ModelUnavailable(message, status=status)
