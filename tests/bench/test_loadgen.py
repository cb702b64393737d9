"""The load generator of bench/ against a real HTTP server: what it reads, what it gives
up on, that a slow answer holds back no later request of the open loop, and that the
closed loop keeps the number in flight it was given."""

from __future__ import annotations

import statistics
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock, Thread

import pytest

from bench import loadgen


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.paths.append(self.path)
        self.server.arrivals.append(time.monotonic())
        with self.server.lock:
            self.server.in_flight += 1
            self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
        try:
            self._answer()
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def _answer(self) -> None:
        if self.path == "/slow":
            time.sleep(1.0)
        if self.path.startswith("/wait"):
            time.sleep(0.05)
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
            return
        status = 503 if self.path == "/busy" else 200
        self.send_response(status)
        self.send_header("Content-Length", "7")
        if self.path == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(b"success")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.paths, httpd.arrivals = [], []
    httpd.lock, httpd.in_flight, httpd.most_in_flight = Lock(), 0, 0
    Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _plan(
    server,
    paths: list[str],
    offsets: list[float],
    *,
    timeout: float = 5.0,
    warm_up=(),
    in_flight: int = 0,
):
    port = server.server_address[1]

    def request(path: str) -> bytes:
        return loadgen.encode("POST", path, f"127.0.0.1:{port}", {}, b"<xml/>")

    return loadgen.Plan(
        host="127.0.0.1",
        port=port,
        requests=[request(p) for p in paths],
        offsets=offsets,
        timeout=timeout,
        connections=2,
        warm_up=[request(p) for p in warm_up],
        in_flight=in_flight,
    )


def test_reads_every_kind_of_response_and_gives_up_at_the_timeout(server):
    paths = ["/ok", "/chunked", "/close", "/ok", "/busy", "/slow", "/ok"]
    run = loadgen.run(_plan(server, paths, [i * 0.02 for i in range(7)], timeout=0.5), lambda: None)

    assert [r.outcome for r in run.results] == ["200", "200", "200", "200", "503", "timeout", "200"]
    assert run.results[5].latency is None
    assert all(0 <= r.latency < 0.5 for r in run.results if r.latency is not None)
    assert sorted(server.paths) == sorted(paths)  # each sent once: nothing retried
    assert run.connections >= 3  # 2 opened beforehand, one more after /close hung up


def test_a_slow_answer_delays_no_later_request(server):
    offsets = [0.0, 0.1, 0.2, 0.3]
    run = loadgen.run(_plan(server, ["/slow", "/ok", "/ok", "/ok"], offsets), lambda: None)

    slow, *others = run.results
    assert slow.outcome == "200" and slow.latency >= 1.0
    # Sent on schedule on other connections, each answered well before the slow one.
    assert all(r.outcome == "200" and r.late < 0.05 and r.latency < 0.5 for r in others)


def test_the_warm_up_goes_before_the_readings_and_counts_in_no_result(server):
    seen_when_ready = []
    plan = _plan(server, ["/ok"], [0.0, 0.01, 0.02], warm_up=["/busy", "/busy"])

    run = loadgen.run(plan, lambda: seen_when_ready.append(list(server.paths)))

    assert seen_when_ready == [["/busy", "/busy"]]
    assert [r.outcome for r in run.results] == ["200"]


def test_due_times_are_on_the_clock_every_process_shares(server):
    # The benchmark dates answers with this process's time.monotonic against run.start.
    offsets = [i * 0.05 for i in range(5)]
    run = loadgen.run(_plan(server, ["/ok"] * 5, offsets), lambda: None)

    for offset, result, arrived in zip(offsets, run.results, server.arrivals, strict=True):
        went = run.start + offset + result.late
        assert went <= arrived < went + 0.05
        assert result.latency >= arrived - (run.start + offset)


def test_a_closed_loop_keeps_as_many_in_flight_as_it_was_given(server):
    paths = [f"/wait/{i}" for i in range(12)]
    paths[7] = "/busy"
    plan = _plan(server, paths, [], warm_up=["/ok", "/busy", "/ok"], in_flight=3)

    def ready() -> None:
        server.most_in_flight = 0

    run = loadgen.run(plan, ready)

    assert server.most_in_flight == 3  # never more, and as many as given
    assert sorted(server.paths) == sorted(["/ok", "/busy", "/ok", *paths])  # each sent once
    assert [r.outcome for r in run.warm_up] == ["200", "503", "200"]
    assert [r.outcome for r in run.results] == ["200"] * 7 + ["503"] + ["200"] * 4  # in order
    # Each timed from its sending: the server's 50 ms, not a wait behind the others.
    waits = [r for path, r in zip(paths, run.results, strict=True) if path.startswith("/wait")]
    assert all(0.05 <= r.latency < 0.5 and r.late < 0.01 for r in waits)


def test_arrivals_are_evenly_spaced_or_poisson_at_the_rate():
    assert loadgen.arrivals(4, 200) == [0.0, 0.005, 0.01, 0.015]
    poisson = loadgen.arrivals(20000, 400, seed=14)
    gaps = [b - a for a, b in zip(poisson, poisson[1:], strict=False)]
    assert statistics.mean(gaps) == pytest.approx(1 / 400, rel=0.03)
    assert statistics.stdev(gaps) == pytest.approx(1 / 400, rel=0.05)  # exponential: sd = mean
    assert poisson == loadgen.arrivals(20000, 400, seed=14)
