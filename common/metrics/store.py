"""Where every process keeps its metrics: prometheus-client's multiprocess mode.

Why multiprocess mode, and not an HTTP endpoint in each Celery worker: one `/metrics` on
the web then shows everything, the web's callbacks and the workers' answers, to one scrape
target behind one token. That is what the embedded default needs (`bin/run` starts a web
and a worker on one machine and should not need a second port), and Docker Compose gets
the same by sharing one volume between the web, worker and beat containers. A worker
endpoint would mean a second server to run, secure and scrape per worker, for nothing the
shared directory does not already give. Its limit: the processes must share a directory,
so a worker on another machine needs its own web process (or the directory) beside it.

How the files stay right:

- Every process writes its values to files of its own in PROMETHEUS_MULTIPROC_DIR (the
  settings default it to VAR_DIR/metrics) and a scrape adds up all the files. Counters and
  histograms of a process that has exited stay in the sum, so a total never goes down when
  gunicorn or Celery replaces a child. The product exports no gauges, so there is nothing
  for `mark_process_dead` (a gunicorn `child_exit` hook) to clean up after a child.
- Files are named by host name and process id, not by process id alone: containers that
  share the directory each count their processes from 1.
- The directory is wiped when the first process to use it starts while no other process
  uses it: every process holds a shared lock on `lock` there for its lifetime (children
  inherit it), and one that gets the exclusive lock instead knows the files are from an
  earlier run. Wiping whenever one service starts would lose the counts of the others,
  still running, which keep writing to files no scrape reads.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from prometheus_client import CollectorRegistry, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

# The collector splits file names at "_" to read their type.
_HOST = socket.gethostname().replace("_", "-")
# This process's lock on the directory, kept open for its lifetime.
_lock: IO[str] | None = None


def process_identifier() -> str:
    """The part of this process's file names that no other live process shares."""
    return f"{_HOST}-{os.getpid()}"


def directory() -> Path:
    """The shared directory (PROMETHEUS_MULTIPROC_DIR), created if missing."""
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def claim(path: Path) -> IO[str]:
    """Take a shared lock on `path` for as long as the returned file stays open, wiping
    the metric files there first if no other process holds one (a run that has ended
    left them). Blocks only while another process is wiping."""
    lock = (path / "lock").open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # in use: these files are counting now
    else:
        for stale in path.glob("*.db"):
            stale.unlink()
    fcntl.flock(lock, fcntl.LOCK_SH)
    return lock


def start() -> None:
    """Put this process's metrics in the shared directory. Must run before the first
    metric is created; its children (forked workers) inherit the lock and the set-up."""
    global _lock
    if _lock is None:
        _lock = claim(directory())
        values.ValueClass = values.MultiProcessValue(process_identifier)


def exposition(accept: str) -> tuple[bytes, str]:
    """Every process's metrics, added up, in the format the scraper's Accept header asks
    for (Prometheus's text format by default), and that format's content type."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory()))
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
