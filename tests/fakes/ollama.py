"""A fake Ollama that speaks real HTTP, so tests exercise the client's request code.

It streams like Ollama v0.11 (NDJSON on /api/chat, SSE on /v1/chat/completions), with knobs
for latency and the failures a client must survive. Tests change the knobs between requests.
Run it by hand to drive the product without a model:

    python -m tests.fakes.ollama --port 11434 --first-token-delay 2
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_REPLY = "Hello from the fake model"
VERSION = "0.11.10"
# The texts of Ollama v0.3–v0.11, for statuses a test asks for by number.
FAILURE_TEXTS = {
    400: "registry.ollama.ai/library/{model} does not support tools",
    404: 'model "{model}" not found, try pulling it first',
    500: "model runner has unexpectedly stopped, this may be due to resource limitations or an "
    "internal error, check ollama server logs for details",
    503: "server busy, please try again.  maximum pending requests exceeded",
}
MIDSTREAM_ERROR = "an error was encountered while running the model: unexpected EOF"
# api.Options fields by type: Ollama answers 500 to a value of another JSON type (a whole
# number is a float to Go's JSON, so numbers pass for either).
INT_OPTIONS = {"num_ctx", "num_predict", "num_keep", "seed", "top_k", "repeat_last_n", "num_gpu"}
FLOAT_OPTIONS = {"temperature", "top_p", "min_p", "repeat_penalty", "presence_penalty"}
GO_DURATION_UNITS = {"ns", "us", "µs", "μs", "ms", "s", "m", "h"}


@dataclass(frozen=True)
class Served:
    """When (time.monotonic) one streamed answer's request arrived, its first token was
    ready and its last byte was written: benchmarks subtract the model's own time
    (finished - started) from end-to-end figures with it."""

    body: dict[str, Any]
    started: float
    first_token: float
    finished: float


@dataclass(frozen=True)
class Disconnect:
    """A chat request whose client hung up before the answer's end, and when
    (time.monotonic) the fake noticed: while it waited for a token, or as it wrote."""

    body: dict[str, Any]
    at: float


class ClientGone(Exception):
    """The client closed the connection while the fake waited to send the next token."""


@dataclass
class Reply:
    """What one admitted chat request streams back."""

    model: str
    pieces: list[str]
    done_reason: str
    prompt_tokens: int
    first_token_delay: float
    chunk_delay: float
    error: str | None = None  # sent as a final line after `pieces`, instead of the done line
    # Reasoning sent apart (`message.thinking`), when the request asked to think; otherwise
    # a thinking model writes it inline in `pieces`, as <think>…</think>.
    thinking: list[str] = field(default_factory=list)
    pings_after: int | None = None  # /v1: after this many pieces, only ": ping" comments
    usage: bool = True  # /v1: send the usage chunk
    # Seconds to load the model first, and what to call once it is loaded.
    load_delay: float = 0.0
    on_loaded: Callable[[], None] = field(default=lambda: None)
    arrived_ns: int = field(default_factory=time.monotonic_ns)
    first_token_ns: int = 0
    # How to let time pass: the server watches the client meanwhile, as Ollama does.
    wait: Callable[[float], None] = time.sleep

    def paced(self) -> Iterator[str]:
        """The pieces, spaced out in time like a model generating them."""
        if self.load_delay:
            self.wait(self.load_delay)
            self.on_loaded()
        self.wait(self.first_token_delay)
        self.first_token_ns = time.monotonic_ns()
        for index, piece in enumerate(self.pieces):
            if index:
                self.wait(self.chunk_delay)
            yield piece

    def metrics(self) -> dict[str, int]:
        """The done line's counters, in nanoseconds; zeros are omitted, as Go's omitempty does."""
        now = time.monotonic_ns()
        values = {
            "total_duration": now - self.arrived_ns,
            "load_duration": int(self.load_delay * 1e9) or 1_334_875,
            "prompt_eval_count": self.prompt_tokens,
            "prompt_eval_duration": int(self.first_token_delay * 1e9),
            "eval_count": len(self.pieces),
            "eval_duration": now - self.first_token_ns,
        }
        return {key: value for key, value in values.items() if value}


class FakeOllama:
    """A threaded HTTP server on 127.0.0.1; use as a context manager or start()/stop().

    `requests` holds every parsed chat request body, native and /v1, in arrival order.
    `disconnects` holds the requests whose client hung up mid-answer (Ollama stops
    generating then). The knobs below are read per request; reset() restores their defaults.
    """

    reply: str  # streamed a word at a time
    first_token_delay: float  # seconds before the first chunk (and the response headers)
    chunk_delay: float  # seconds between chunks
    fail_status: int | None  # answer with this status and Ollama's error text for it
    fail_times: int | None  # fail only the first N chat requests, then succeed; None = all
    midstream_error: str | None  # stream half the reply, then this error line (status 200)
    known_models: set[str] | None  # other models get 404; None = every model exists
    raw_stream: list[str] | None  # if set, sent verbatim as the 200 body's chunks
    raw_error: tuple[int, bytes] | None  # if set, this status and body, as any server might
    thinking: str | None  # a reasoning model's thoughts before `reply`
    can_think: bool  # False: `think: true` gets Ollama's 400, as for a non-thinking model
    pings_after: int | None  # /v1: after this many words, keep-alive comments and no token
    usage: bool  # /v1: report token usage, as Ollama does; llama.cpp may not
    context_length: int  # /api/show: every model's trained context length (model_info)
    metadata_delay: float  # seconds before /api/tags, /v1/models and /api/show answer
    hang: bool  # chat requests get no answer at all until release() (or reset())
    linger: float  # seconds between a chat stream's last line and its body's end
    # Models in memory, listed by /api/ps; a request for another first waits `load_delay`
    # and loads it. None: loading is not modelled, and /api/ps answers 404.
    loaded: set[str] | None
    load_delay: float
    # OLLAMA_NUM_PARALLEL: answers generated at once (None: any number); up to `max_queue`
    # more wait their turn, and beyond that get Ollama's 503 "server busy".
    parallel: int | None
    max_queue: int

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.requests: list[dict[str, Any]] = []
        self.served: list[Served] = []
        self.disconnects: list[Disconnect] = []
        self._lock = threading.Lock()
        self._hung_up = threading.Condition(self._lock)
        self._turns = threading.Condition(self._lock)
        self._released = threading.Event()
        self.in_flight = 0  # chat requests open now, hung, waiting or streaming
        self.connections = 0  # TCP connections accepted, ever
        self.peak_in_flight = 0
        self._server = _Server((host, port), _Handler)
        self._server.fake = self
        self._thread: threading.Thread | None = None
        self.reset()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reset(self) -> None:
        """Forget past requests and restore every knob to its default."""
        self.reply = DEFAULT_REPLY
        self.first_token_delay = 0.0
        self.chunk_delay = 0.0
        self.fail_status = None
        self.fail_times = None
        self.midstream_error = None
        self.known_models = None
        self.raw_stream = None
        self.raw_error = None
        self.thinking = None
        self.can_think = True
        self.pings_after = None
        self.usage = True
        self.context_length = 32768
        self.metadata_delay = 0.0
        self.release()
        self.hang = False
        self.linger = 0.0
        self.loaded = None
        self.load_delay = 0.0
        self.parallel = None
        self.max_queue = 512
        with self._lock:
            self.requests.clear()
            self.served.clear()
            self.disconnects.clear()
            self._failures = 0
            self.peak_in_flight = self.in_flight
            self._generating = 0
            self._queued = 0

    def release(self) -> None:
        """Let every hung request go on (each then answers as the knobs say)."""
        self._released.set()
        self._released = threading.Event()

    def enter(self) -> bool:
        """A chat request begins: counted in flight, held while `hang`, then waiting its
        turn under `parallel`. False: refused, the queue being full (answer 503)."""
        released = self._released
        with self._turns:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        if self.hang:
            released.wait()
        with self._turns:
            if self.parallel is not None:
                if self._queued >= self.max_queue:
                    self.in_flight -= 1
                    return False
                self._queued += 1
                self._turns.wait_for(lambda: self._generating < (self.parallel or 1 << 30))
                self._queued -= 1
            self._generating += 1
        return True

    def leave(self) -> None:
        """An entered chat request ended."""
        with self._turns:
            self.in_flight -= 1
            self._generating -= 1
            self._turns.notify_all()

    def record_served(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)

    def record_disconnect(self, body: dict[str, Any]) -> None:
        with self._hung_up:
            self.disconnects.append(Disconnect(body, time.monotonic()))
            self._hung_up.notify_all()

    def wait_for_disconnect(self, timeout: float) -> Disconnect:
        """The first client that hung up, waiting up to `timeout` seconds for one to;
        raises TimeoutError if none does."""
        with self._hung_up:
            if not self._hung_up.wait_for(lambda: self.disconnects, timeout):
                raise TimeoutError(f"no client hung up within {timeout} s")
            return self.disconnects[0]

    def start(self) -> FakeOllama:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() would wait forever for a loop never started
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def admit(self, body: dict[str, Any], *, stream_default: bool) -> Reply | tuple[int, str]:
        """Record a chat request and decide its fate: a Reply, or an error (status, text).

        fail_status wins over midstream_error when both are set.
        """
        with self._lock:
            self.requests.append(body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return 400, "model is required"
        if body.get("stream", stream_default) is not True:
            return 400, "the fake Ollama only streams: send stream: true"
        if (refused := _type_error(body)) is not None:
            return refused
        if self.known_models is not None and model not in self.known_models:
            return 404, FAILURE_TEXTS[404].format(model=model)
        if body.get("think") is True and not self.can_think:
            return 400, f'"{model}" does not support thinking'

        if (self.fail_status or self.midstream_error) and self._take_failure():
            if self.fail_status:
                text = FAILURE_TEXTS.get(self.fail_status, "fake failure (HTTP {status})")
                return self.fail_status, text.format(model=model, status=self.fail_status)
            return self._reply(body, model, error=self.midstream_error)
        return self._reply(body, model, error=None)

    def _take_failure(self) -> bool:
        with self._lock:
            if self.fail_times is not None and self._failures >= self.fail_times:
                return False
            self._failures += 1
            return True

    def _reply(self, body: dict[str, Any], model: str, error: str | None) -> Reply:
        pieces = re.findall(r"\s*\S+|\s+", self.reply)
        thinking = re.findall(r"\s*\S+|\s+", self.thinking or "")
        think_apart = body.get("think") is True
        if thinking and not think_apart:
            pieces, thinking = ["<think>", *thinking, "</think>\n\n", *pieces], []
        limit = _requested_limit(body)
        done_reason = "stop"
        if 0 < limit < len(thinking) + len(pieces):  # thoughts count against the limit too
            done_reason = "length"
            thinking = thinking[:limit]
            pieces = pieces[: limit - len(thinking)]
        if error is not None:
            pieces = pieces[: max(1, len(pieces) // 2)]
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages") or [])
        loading = self.loaded is not None and model not in self.loaded
        return Reply(
            load_delay=self.load_delay if loading else 0.0,
            on_loaded=lambda: self._load(model),
            thinking=thinking,
            pings_after=self.pings_after,
            usage=self.usage,
            model=model,
            pieces=pieces,
            done_reason=done_reason,
            prompt_tokens=max(1, len(prompt.split())),
            first_token_delay=self.first_token_delay,
            chunk_delay=self.chunk_delay,
            error=error,
        )

    def _load(self, model: str) -> None:
        with self._lock:
            if self.loaded is not None:
                self.loaded.add(model)


def _type_error(body: dict[str, Any]) -> tuple[int, str] | None:
    """Ollama's answer to options or a keep_alive of the wrong type; None if all is well."""
    for key, value in (body.get("options") or {}).items():
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if key in INT_OPTIONS and not is_number:
            return 500, f'option "{key}" must be of type integer'
        if key in FLOAT_OPTIONS and not is_number:
            return 500, f'option "{key}" must be of type float32'
        if key == "stop" and not isinstance(value, list):
            return 500, 'option "stop" must be of type array'
    keep_alive = body.get("keep_alive")
    # A number is seconds; a string goes through Go's time.ParseDuration.
    if isinstance(keep_alive, str) and (error := _duration_error(keep_alive)):
        return 400, error
    return None


def _duration_error(text: str) -> str | None:
    """Go's time.ParseDuration error for `text` (e.g. "-1" lacks a unit), or None."""
    quoted = json.dumps(text, ensure_ascii=False)
    rest = text[1:] if text[:1] in ("-", "+") else text
    if rest == "0":
        return None
    if not rest:
        return f"time: invalid duration {quoted}"
    while rest:
        number = re.match(r"[0-9]*(?:\.[0-9]*)?", rest).group()
        if number in ("", "."):
            return f"time: invalid duration {quoted}"
        unit = re.match(r"[^0-9.]*", rest[len(number) :]).group()
        if not unit:
            return f"time: missing unit in duration {quoted}"
        if unit not in GO_DURATION_UNITS:
            return f"time: unknown unit {json.dumps(unit, ensure_ascii=False)} in duration {quoted}"
        rest = rest[len(number) + len(unit) :]
    return None


def _requested_limit(body: dict[str, Any]) -> int:
    """num_predict (native) or max_tokens (/v1); 0 when the request sets no bound."""
    limit = (body.get("options") or {}).get("num_predict", body.get("max_tokens"))
    return limit if isinstance(limit, int) else 0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _native_stream(reply: Reply) -> Iterator[str]:
    """NDJSON lines as /api/chat sends them."""

    def line(obj: dict[str, Any]) -> str:
        return json.dumps(obj) + "\n"

    for thought in reply.thinking:
        message = {"role": "assistant", "content": "", "thinking": thought}
        yield line({"model": reply.model, "created_at": _now(), "message": message, "done": False})
    for piece in reply.paced():
        message = {"role": "assistant", "content": piece}
        yield line({"model": reply.model, "created_at": _now(), "message": message, "done": False})
    if reply.error is not None:
        yield line({"error": reply.error})
        return
    yield line(
        {
            "model": reply.model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": reply.done_reason,
            **reply.metrics(),
        }
    )


def _openai_stream(reply: Reply) -> Iterator[str]:
    """SSE events in the v0.3–v0.11 framing: `role` in every delta, finish on an empty one."""
    created = int(time.time())

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {
            "id": "chatcmpl-42",
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "system_fingerprint": "fp_ollama",
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(chunk)}\n\n"

    def delta(content: str, finish_reason: str | None = None) -> dict[str, Any]:
        message = {"role": "assistant", "content": content}
        return {"index": 0, "delta": message, "finish_reason": finish_reason}

    for index, piece in enumerate(reply.paced()):
        if index == reply.pings_after:
            while True:  # a server holding the stream open, generating nothing
                reply.wait(0.05)
                yield ": ping\n\n"
        yield event([delta(piece)])
    if reply.error is not None:
        yield event([delta("")])  # Ollama ends a failed /v1 stream like this, without [DONE]
        return
    yield event([delta("", reply.done_reason)])
    if not reply.usage:
        yield "data: [DONE]\n\n"
        return
    completion_tokens = len(reply.pieces)
    usage = {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": reply.prompt_tokens + completion_tokens,
    }
    yield event([], usage=usage)
    yield "data: [DONE]\n\n"


@dataclass(frozen=True)
class _Dialect:
    """How one chat endpoint frames its stream and its errors."""

    content_type: str
    stream: Callable[[Reply], Iterator[str]]
    error: Callable[[str], dict[str, Any]]
    stream_default: bool  # what an absent `stream` field means


_NATIVE = _Dialect("application/x-ndjson", _native_stream, lambda text: {"error": text}, True)
_OPENAI = _Dialect(
    "text/event-stream",
    _openai_stream,
    lambda text: {"error": {"message": text, "type": "api_error", "param": None, "code": None}},
    False,
)
_CHAT_ROUTES = {"/api/chat": _NATIVE, "/v1/chat/completions": _OPENAI}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A benchmark opens hundreds of connections at once; the default backlog of 5 drops them.
    request_queue_size = 1024
    fake: FakeOllama

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.fake._lock:
            self.fake.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up mid-stream (timeouts) or reset once they have the done line: normal.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 for chunked streaming, which is how clients see each chunk as it is sent.
    protocol_version = "HTTP/1.1"
    # Go's net/http (Ollama) disables Nagle: with it on, every write after the first waits
    # for the client's delayed ACK (up to 40 ms), time a real model never adds.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a benchmark's thousands of access lines would bury test output."""

    def parse_request(self) -> bool:
        # Served.started: the request line is in, so parsing counts as the model's own time.
        self.arrived_at = time.monotonic()
        return super().parse_request()

    def do_GET(self) -> None:
        if self.path in ("/api/tags", "/v1/models"):
            time.sleep(self.server.fake.metadata_delay)
        if self.path == "/":
            self._send(200, "text/plain; charset=utf-8", b"Ollama is running")
        elif self.path == "/api/tags":
            self._send_json(200, {"models": [_tag(m) for m in self._models()]})
        elif self.path == "/api/version":
            self._send_json(200, {"version": VERSION})
        elif self.path == "/api/ps" and self.server.fake.loaded is not None:
            loaded = sorted(self.server.fake.loaded)
            self._send_json(200, {"models": [_running(m) for m in loaded]})
        elif self.path == "/v1/models":
            models = [{"id": m, "object": "model", "owned_by": "library"} for m in self._models()]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._not_found_or_bad_method()

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        if self.path == "/api/show":
            self._show()
            return
        dialect = _CHAT_ROUTES.get(self.path)
        if dialect is None:
            self._not_found_or_bad_method()
            return
        body = self._read_json()
        if body is None:
            self._send_json(400, dialect.error("invalid JSON request body"))
            return
        outcome = self.server.fake.admit(body, stream_default=dialect.stream_default)
        if self.server.fake.raw_error is not None:
            status, raw = self.server.fake.raw_error
            self._send(status, "text/plain; charset=utf-8", raw)
            return
        if isinstance(outcome, tuple):
            status, text = outcome
            self._send_json(status, dialect.error(text))
            return
        fake = self.server.fake
        if not fake.enter():
            self._send_json(503, dialect.error(FAILURE_TEXTS[503]))
            return
        raw = fake.raw_stream
        outcome.wait = self._wait_watching
        frames = iter(raw) if raw is not None else dialect.stream(outcome)
        try:
            first_frame = self._stream(dialect.content_type, frames)
        except (ClientGone, ConnectionError):
            fake.record_disconnect(body)
            self.close_connection = True
            return
        finally:
            fake.leave()
        fake.record_served(Served(body, self.arrived_at, first_frame, time.monotonic()))

    def _show(self) -> None:
        """A model's details, as Ollama's /api/show: model_info carries its context length."""
        time.sleep(self.server.fake.metadata_delay)
        body = self._read_json() or {}
        model = body.get("model") or body.get("name")
        if not isinstance(model, str) or not model:
            self._send_json(400, {"error": "model is required"})
            return
        if model not in self._models():
            self._send_json(404, {"error": f"model '{model}' not found"})
            return
        family = model.split(":")[0]
        info = {
            "general.architecture": family,
            f"{family}.context_length": self.server.fake.context_length,
        }
        details = _tag(model)["details"]
        self._send_json(
            200, {"details": details, "model_info": info, "capabilities": ["completion"]}
        )

    def _wait_watching(self, seconds: float) -> None:
        """Sleep `seconds`, but raise ClientGone as soon as the client closes the connection
        (the socket reads as ended), as Ollama's server notices and cancels the model."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], left)
            if not readable:
                return
            if self.connection.recv(1, socket.MSG_PEEK) == b"":
                raise ClientGone
            time.sleep(left)  # bytes from a client mid-answer: nothing we read now
            return

    def _stream(self, content_type: str, frames: Iterator[str]) -> float:
        """A chunked 200 whose headers wait for the first frame, as Ollama's do; returns
        when (time.monotonic) the first frame was ready."""
        first = next(frames, None)
        first_at = time.monotonic()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for frame in itertools.chain([] if first is None else [first], frames):
            self._write_chunk(frame)
        time.sleep(self.server.fake.linger)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return first_at

    def _write_chunk(self, frame: str) -> None:
        data = frame.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _models(self) -> list[str]:
        return sorted(self.server.fake.known_models or {"gemma:2b", "qwen2:1.5b"})

    def _not_found_or_bad_method(self) -> None:
        known = {"/", "/api/tags", "/api/version", "/v1/models", "/api/show", *_CHAT_ROUTES}
        if self.server.fake.loaded is not None:
            known.add("/api/ps")
        if self.path in known:
            self._send(405, "text/plain", b"405 method not allowed")
        else:
            self._send(404, "text/plain", b"404 page not found")

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, "application/json; charset=utf-8", json.dumps(payload).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _running(name: str) -> dict[str, Any]:
    """A loaded model as /api/ps lists it."""
    tag = _tag(name)
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    return {
        **{key: tag[key] for key in ("name", "model", "size", "digest", "details")},
        "expires_at": expires.isoformat(),
        "size_vram": 0,
        "context_length": 4096,
    }


def _tag(name: str) -> dict[str, Any]:
    family = name.split(":")[0]
    return {
        "name": name,
        "model": name,
        "modified_at": "2024-07-22T10:06:43.685128983Z",
        "size": 1678456656,
        "digest": "b50d6c999e59" + "0" * 52,
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": "3B",
            "quantization_level": "Q4_0",
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Ollama over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="seconds")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds")
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--models", nargs="*", help="known models; default: any name works")
    args = parser.parse_args(argv)
    fake = FakeOllama(args.host, args.port)
    fake.first_token_delay = args.first_token_delay
    fake.chunk_delay = args.chunk_delay
    fake.reply = args.reply
    fake.known_models = set(args.models) if args.models else None
    with fake:
        print(f"Fake Ollama listening on {fake.url} (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
