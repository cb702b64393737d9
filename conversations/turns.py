"""Whose turn it is at a model endpoint: admission's rules, apart from the database.

An endpoint is a model server (`endpoint_key`). The questions at it either hold one of its
slots (a lease that runs) or wait for one; `line_up` orders the waiting: round-robin
between tenants, arrival order within each tenant.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from .models import Message

_QUEUED, _ANSWERING = Message.Status.QUEUED, Message.Status.ANSWERING


def endpoint_key(url: str) -> str:
    """The model server behind an endpoint URL: scheme, host and port (the scheme's default
    if none is given), and its path without a trailing "/" or "/v1" (Ollama's
    OpenAI-compatible API is the same server), e.g. "http://ollama:11434"."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:  # not a number: validators refuse it, the key just keeps it apart
        port = 0
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    path = parts.path.rstrip("/").removesuffix("/v1").rstrip("/")
    return f"{scheme}://{host}:{port}{path}"


@dataclass(frozen=True)
class Entry:
    """One question at an endpoint, as read under its lock."""

    message_id: int
    tenant_id: int
    arrived: datetime
    status: str
    claimed_until: datetime | None
    lease_until: datetime | None
    cap: int
    notified_at: datetime | None

    def holds(self, now: datetime) -> bool:
        """It holds a slot: granted, its lease runs, and its question is not finished (a
        question that failed, or was stopped, while its lease ran gave the slot up)."""
        return not self.stale and self.lease_until is not None and self.lease_until > now

    def waits(self, now: datetime) -> bool:
        """It waits for a slot: queued, or held by a live worker that is checking on it.
        A lease run out while its row is still claimed is a dead worker's: that question
        waits for its claim to run out (then the sweep hands it on), not for a slot."""
        if self.lease_until is None:
            live_claim = self.claimed_until is not None and self.claimed_until > now
            return self.status == _QUEUED or (self.status == _ANSWERING and live_claim)
        return self.lease_until <= now and self.status == _QUEUED

    @property
    def stale(self) -> bool:
        """Its question was answered or failed: nothing to keep it for."""
        return self.status not in (_QUEUED, _ANSWERING)


@dataclass(frozen=True)
class Line:
    """An endpoint's questions at one moment: those holding slots, those waiting (in the
    order they get slots), and the number of slots."""

    holding: list[Entry]
    waiting: list[Entry]
    cap: int

    @property
    def free(self) -> int:
        return max(self.cap - len(self.holding), 0)


def line_up(entries: list[Entry], now: datetime, served: dict[str, int]) -> Line:
    """Who holds a slot, and the waiting in the order they get one: round-robin between
    tenants, arrival order within a tenant. The next turn goes to the tenant with the
    fewest slots held, then to the one whose last answer ended least lately (`served`: a
    tenant's id -> the number of its last answer to end); each turn given counts as a slot
    held for the turns after it. The cap is the smallest of the tenants present (1 if
    none)."""
    holding = [e for e in entries if e.holds(now)]
    held = Counter(e.tenant_id for e in holding)
    queues: dict[int, deque[Entry]] = {}
    for entry in sorted((e for e in entries if e.waits(now)), key=_arrival):
        queues.setdefault(entry.tenant_id, deque()).append(entry)
    heads = [(held[t], served.get(str(t), 0), *_arrival(q[0]), t) for t, q in queues.items()]
    heapq.heapify(heads)
    number = max(served.values(), default=0)
    waiting = []
    while heads:
        slots, *_, tenant = heapq.heappop(heads)
        waiting.append(queues[tenant].popleft())
        number += 1
        if queues[tenant]:
            heapq.heappush(heads, (slots + 1, number, *_arrival(queues[tenant][0]), tenant))
    cap = min((e.cap for e in holding + waiting), default=1)
    return Line(holding, waiting, cap)


def _arrival(entry: Entry) -> tuple[datetime, int]:
    return entry.arrived, entry.message_id


@dataclass(frozen=True)
class Waiting:
    """Where a question that found no free slot stands."""

    ahead: int  # questions that get a slot before it
    in_flight: int  # answers the endpoint is working on
    cap: int
    answer_seconds: float | None  # the endpoint's recent seconds per answer; None: unknown
    notified_at: datetime | None  # when its asker was last told where it stands
    slot_ends: datetime | None  # the first lease in use to run out, if none is renewed

    @property
    def eta_seconds(self) -> float | None:
        """Until its answer is written: the answers before it, `cap` at a time, then its
        own; None while the endpoint has no recent answer time."""
        if self.answer_seconds is None:
            return None
        return self.answer_seconds * (self.ahead / self.cap + 1)
