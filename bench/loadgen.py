"""A load generator over a pool of kept-alive HTTP/1.1 connections: an open loop, where
each request goes out at a time fixed in advance whatever the server's answers do, or a
closed loop, a fixed number of requests in flight.

A closed loop (a client sends its next request once the last is answered) sends less
while the server is slow and so hides the slowness it causes: coordinated omission. In
the open loop each request has its due time, and its latency runs from that time, not
from when it went out, so a generator that falls behind makes the figures worse, never
better; each result says how late its request went out. The closed loop is for what it
measures honestly: how long a request takes with N in flight.

It runs in a process of its own (`run`): the benchmark's fakes are threads in the
benchmark's process and would share its interpreter lock (timed from there, by threads
of the `requests` library, 20 callbacks in flight read about 9 ms slower at the median,
and that process, client and fakes, spent 0.8 ms of CPU a callback; this generator
spends 0.1 ms). Requests come to it whole, already signed and encrypted, so that its
CPU goes to sending.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

READY, GO = "ready", "go"
LEAD = 0.01  # seconds from taking the clock to the first due time


@dataclass(frozen=True)
class Plan:
    """What to send: `requests[i]` (a whole HTTP/1.1 request, bytes as written) is due
    `offsets[i]` seconds after the start. `warm_up` requests go first, on the same pace,
    and count in no figure. Each request is given up `timeout` seconds after it went out.
    `connections` are opened before the start; more are opened when every one is busy.
    With `in_flight` > 0 the loop is closed instead: that many requests in flight, each
    sender sending its next once its last is answered, the offsets unused."""

    host: str
    port: int
    requests: list[bytes]
    offsets: list[float]
    timeout: float
    connections: int
    warm_up: list[bytes]
    in_flight: int = 0


@dataclass(frozen=True)
class Result:
    """One request: `late` seconds from its due time to going out; `latency` seconds from
    its due time to the last byte of its response, None when it got none; `outcome` the
    response's status ("200"), "timeout", or the name of the connection's error. In a
    closed loop a request is due when it goes out: `late` is 0, and `latency` runs from
    its sending (a connection opened for it included)."""

    late: float
    latency: float | None
    outcome: str


@dataclass(frozen=True)
class Run:
    """The results in the plan's order, and the warm-up's; when (time.monotonic, the same
    clock in every process) the first request was due (in a closed loop, when it went
    out); the generator's own CPU seconds while sending; and how many connections it
    opened in all (the warm-up's included)."""

    results: list[Result]
    start: float
    cpu_seconds: float
    connections: int
    warm_up: list[Result]


def arrivals(count: int, rate: float, seed: int | None = None) -> list[float]:
    """Due times in seconds from the start, `rate` a second: evenly spaced, or with a
    seed, a Poisson process (exponential gaps, as independent senders make)."""
    if seed is None:
        return [i / rate for i in range(count)]
    draw, offsets, at = random.Random(seed), [], 0.0
    for _ in range(count):
        offsets.append(at)
        at += draw.expovariate(rate)
    return offsets


def encode(method: str, target: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    """One HTTP/1.1 request as written to the socket; `target` is the path and query."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def run(plan: Plan, when_ready: Callable[[], None]) -> Run:
    """Send the warm-up, call `when_ready` (the benchmark takes its first readings), then
    send the plan's requests (on schedule, or in turn) and return once each is answered
    or given up."""
    context = multiprocessing.get_context("spawn")  # no copy of the fakes' threads and locks
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(theirs, plan), daemon=True)
    process.start()
    try:
        if ours.recv() != READY:
            raise RuntimeError("the load generator did not get ready")
        when_ready()
        ours.send(GO)
        return ours.recv()
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


def _serve(pipe: Connection, plan: Plan) -> None:
    pipe.send(asyncio.run(_generate(pipe, plan)))


async def _generate(pipe: Connection, plan: Plan) -> Run:
    pool = _Pool(plan.host, plan.port)
    warm_up = await _send(pool, plan, plan.warm_up, time.monotonic())
    pipe.send(READY)
    await asyncio.to_thread(pipe.recv)  # GO
    await pool.fill(plan.connections)
    cpu, start = time.process_time(), time.monotonic() + (0 if plan.in_flight else LEAD)
    results = await _send(pool, plan, plan.requests, start)
    return Run(results, start, time.process_time() - cpu, pool.opened, warm_up)


async def _send(pool: _Pool, plan: Plan, requests: list[bytes], start: float) -> list[Result]:
    if plan.in_flight:
        return await _send_in_turn(pool, requests, plan.in_flight, plan.timeout)
    return await _send_on_schedule(pool, requests, plan.offsets, plan.timeout, start)


async def _send_on_schedule(
    pool: _Pool, requests: list[bytes], offsets: list[float], timeout: float, start: float
) -> list[Result]:
    """Each request sent at `start` + its offset (time.monotonic, asyncio's clock)."""
    loop = asyncio.get_running_loop()
    exchanges = []
    for request, offset in zip(requests, offsets, strict=False):
        due = start + offset
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        exchanges.append(asyncio.create_task(_exchange(pool, request, due, timeout)))
    return list(await asyncio.gather(*exchanges))


async def _send_in_turn(
    pool: _Pool, requests: list[bytes], in_flight: int, timeout: float
) -> list[Result]:
    """A closed loop: `in_flight` senders, each taking the next request once its last is
    answered or given up."""
    loop = asyncio.get_running_loop()
    results: dict[int, Result] = {}
    turns = iter(enumerate(requests))

    async def sender() -> None:
        for i, request in turns:
            results[i] = await _exchange(pool, request, loop.time(), timeout)

    await asyncio.gather(*(sender() for _ in range(in_flight)))
    return [results[i] for i in range(len(requests))]


async def _exchange(pool: _Pool, request: bytes, due: float, timeout: float) -> Result:
    loop = asyncio.get_running_loop()
    late = loop.time() - due
    connection = None
    try:
        async with asyncio.timeout(timeout):  # as the platform's: connecting counts
            connection = await pool.take()
            status, reusable = await connection.exchange(request)
    except TimeoutError:  # before OSError, of which it is one
        outcome = "timeout"
    except (OSError, EOFError, ValueError) as error:  # refused, reset, a garbled answer
        outcome = type(error).__name__
    else:
        latency = loop.time() - due
        if reusable:
            pool.idle.append(connection)
        else:
            connection.close()
        return Result(late, latency, str(status))
    if connection is not None:
        connection.close()  # a platform that gives up hangs up
    return Result(late, None, outcome)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    def usable(self) -> bool:
        """False once the server has closed it (an idle kept-alive connection times out)."""
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: bytes) -> tuple[int, bool]:
        """Send `request` and read its whole response: (status, whether the connection
        may carry another request)."""
        self.writer.write(request)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        version, status = head[0].split(" ", 2)[:2]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        reusable = version == "HTTP/1.1" and headers.get("connection") != "close"
        if headers.get("transfer-encoding") == "chunked":
            await self._read_chunks()
        elif "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        else:  # the body runs to the connection's end
            await self.reader.read()
            reusable = False
        return int(status), reusable

    async def _read_chunks(self) -> None:
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await self.reader.readexactly(size + 2)  # the chunk and its CRLF
        while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the end
            pass


class _Pool:
    """Kept-alive connections to one server, the most recently used taken first (the
    least likely to have been closed for idling)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.idle: list[_Connection] = []
        self.opened = 0

    async def take(self) -> _Connection:
        while self.idle:
            connection = self.idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return await self._open()

    async def fill(self, count: int) -> None:
        """Drop the connections the server closed and open new ones up to `count` idle."""
        alive = []
        for connection in self.idle:
            if connection.usable():
                alive.append(connection)
            else:
                connection.close()
        self.idle = alive
        more = max(0, count - len(self.idle))
        self.idle += await asyncio.gather(*(self._open() for _ in range(more)))

    async def _open(self) -> _Connection:
        self.opened += 1
        return _Connection(*await asyncio.open_connection(self.host, self.port))
