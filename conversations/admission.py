"""Model admission: how many answers each model endpoint works on at once, and whose turn
is next.

Ollama works on a few requests at once (OLLAMA_NUM_PARALLEL) and makes the rest wait where
no one sees them; and a worker waiting on a hung endpoint is a worker lost to every tenant.
So each endpoint (its URL normalized: `endpoint_key`) has a number of slots: the smallest
`max_concurrency` among the tenants whose questions are there now. A question holds a slot
while the model answers it: an `Admission` row with a lease, renewed as tokens come, so
that a killed worker's slot frees itself once the lease runs out. A question that finds no
free slot waits in the database, not in a worker: its Admission row has no lease and its
row is queued again until its wake-up (`park`). The answer that frees a slot grants it to
the next waiting question and has its task sent (the `question_granted` signal: tasks.py,
the one module that talks to the broker, sends them).

Turns go round-robin between tenants, in arrival order within each: a tenant's k-th waiting
question comes after every other tenant's (k-1)-th, its answers in flight counting as turns
taken. Every decision is made under a lock on the endpoint's row (SELECT … FOR UPDATE on
PostgreSQL; SQLite has one write lock), so the cap holds across worker processes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import TracebackType
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from common import metrics

from .claims import Claim, RetryLater, ms_between
from .models import Admission, Message, ModelEndpoint
from .signals import question_granted

logger = logging.getLogger(__name__)

# Weight of the newest answer in an endpoint's moving average of answer times.
_RECENT = 0.2
# Read at most this many questions of one endpoint (oldest first) to decide its turns.
_MAX_ENTRIES = 2000
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
        """It holds a slot: granted, and its lease runs."""
        return self.lease_until is not None and self.lease_until > now

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


def line_up(entries: list[Entry], now: datetime) -> Line:
    """Who holds a slot, and the waiting in turn order: round-robin between tenants, each
    tenant's answers in flight counting as turns it took, arrival order within a tenant.
    The cap is the smallest of the tenants present (1 if none)."""
    holding = [e for e in entries if e.holds(now)]
    taken = Counter(e.tenant_id for e in holding)
    turns = []
    for entry in sorted((e for e in entries if e.waits(now)), key=_arrival):
        turns.append((taken[entry.tenant_id], *_arrival(entry), entry))
        taken[entry.tenant_id] += 1
    waiting = [turn[-1] for turn in sorted(turns, key=lambda turn: turn[:3])]
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


class Lease:
    """A question's slot on its endpoint. A context manager: leaving it frees the slot and
    grants it to the next waiting question."""

    def __init__(self, key: str, message_id: int):
        self.key = key
        self.message_id = message_id
        self.renewed = time.monotonic()
        self.answer_seconds: float | None = None  # set by the caller once the model answered

    def renew(self) -> None:
        """The answer is alive (a token came): extend the lease, at most every quarter of
        its length. A failure is only logged: the answer matters more than its slot."""
        if time.monotonic() - self.renewed < settings.IM_ADMISSION_LEASE_SECONDS / 4:
            return
        self.renewed = time.monotonic()
        try:
            Admission.objects.filter(pk=self.message_id).update(lease_until=_lease_end())
        except DatabaseError:
            logger.warning("could not renew the model slot of message %s", self.message_id)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> None:
        """Free the slot, keep the answer time for estimates, and grant the slot on. With
        the database away the lease runs out on its own instead."""
        try:
            with transaction.atomic():
                endpoint = _lock(self.key)
                Admission.objects.filter(pk=self.message_id).delete()
                if self.answer_seconds is not None:
                    average = F("answer_seconds") * (1 - _RECENT) + self.answer_seconds * _RECENT
                    ModelEndpoint.objects.filter(pk=endpoint.pk).update(
                        answer_seconds=Coalesce(average, self.answer_seconds)
                    )
                _fill(endpoint, _entries(endpoint), timezone.now())
        except DatabaseError:
            logger.warning("could not free the model slot of message %s", self.message_id)


def admit(question: Claim, endpoint: str) -> Lease | Waiting:
    """A slot on `endpoint` for `question` (this worker's claim), or where it stands in line.

    A question seen here before keeps its place (its arrival); one granted a slot while it
    waited takes it up, and the queue wait written with its outcome then runs to now.
    """
    row = question.row
    now = timezone.now()
    key = endpoint_key(endpoint)
    with transaction.atomic():
        locked = _lock(key)
        entries = _entries(locked)
        mine = next((e for e in entries if e.message_id == row.pk), None)
        waited = mine is not None
        if mine is None:
            cap = row.tenant.max_concurrency
            Admission.objects.create(message=row, endpoint=locked, cap=cap)
            mine = Entry(
                message_id=row.pk,
                tenant_id=row.tenant_id,
                arrived=row.created_at,
                status=_ANSWERING,
                claimed_until=row.claimed_until,  # this worker's claim
                lease_until=None,
                cap=cap,
                notified_at=None,
            )
            entries.append(mine)
        elif mine.holds(now):  # granted while it waited
            Admission.objects.filter(pk=row.pk).update(lease_until=_lease_end())
            return _admitted(question, key, waited=True)
        elif mine.lease_until is not None:
            # Granted, but its task came after the lease ran out: in line again, in its place.
            Admission.objects.filter(pk=row.pk).update(lease_until=None)
            entries.remove(mine)
            mine = replace(mine, lease_until=None)
            entries.append(mine)
        line, given = _fill(locked, entries, now, mine=row.pk)
    if row.pk in given:
        return _admitted(question, key, waited=waited)
    return Waiting(
        ahead=line.waiting.index(mine) - len(given),
        in_flight=len(line.holding) + len(given),
        cap=line.cap,
        answer_seconds=locked.answer_seconds,
        notified_at=mine.notified_at,
        slot_ends=min((e.lease_until for e in line.holding if e.lease_until), default=None),
    )


def park(question: Claim, endpoint: str, waiting: Waiting, until: datetime | None) -> Lease:
    """Give a waiting question back to the queue, holding no worker: due again at `until`
    (its next notice), when a slot in use may run out, or at the end of its budget,
    whichever comes first. Raises RetryLater, due then; returns its Lease instead if it
    was granted a slot meanwhile (while its asker was told where it stands).

    The claim did no work, so its try is not counted: `attempts` goes back down.
    """
    row = question.row
    now = timezone.now()
    budget_end = now + timedelta(seconds=question.seconds_left() or 0)
    wake = min(t for t in (until, waiting.slot_ends, budget_end) if t is not None)
    key = endpoint_key(endpoint)
    with transaction.atomic():
        _lock(key)
        lease_until = Admission.objects.filter(pk=row.pk).values_list("lease_until", flat=True)
        if (lease_until.first() or now) > now:
            return _admitted(question, key, waited=True)
        Message.objects.filter(pk=row.pk).update(
            status=_QUEUED,
            claimed_until=wake,
            attempts=F("attempts") - 1,
            # Kept, so the wake-up's claim does not count the queue wait again.
            queue_wait_ms=row.queue_wait_ms,
        )
    raise RetryLater(row.pk, row.role, max((wake - now).total_seconds(), 0))


def notified(message_id: int, at: datetime) -> None:
    """Its asker was just told where the question stands."""
    Admission.objects.filter(pk=message_id).update(notified_at=at)


def leave(message_id: int) -> None:
    """The question is done with without a slot (it ran out of time waiting)."""
    Admission.objects.filter(pk=message_id).delete()


def _admitted(question: Claim, key: str, *, waited: bool) -> Lease:
    row = question.row
    now = timezone.now()
    if waited:  # the queue wait the row shows runs to its slot
        row.queue_wait_ms = ms_between(row.created_at, now)
    if row.attempts == 1:  # a retry's wait would count its first try's time too
        seconds = (now - row.created_at).total_seconds()
        metrics.ADMISSION_WAIT_SECONDS.labels(metrics.endpoint_label(key)).observe(seconds)
    return Lease(key, row.pk)


def _lock(key: str) -> ModelEndpoint:
    """The endpoint's row, locked until the transaction ends; created on first use."""
    locked = ModelEndpoint.objects.select_for_update()
    try:
        return locked.get(key=key)
    except ModelEndpoint.DoesNotExist:
        ModelEndpoint.objects.bulk_create([ModelEndpoint(key=key)], ignore_conflicts=True)
        return locked.get(key=key)


def _entries(endpoint: ModelEndpoint) -> list[Entry]:
    rows = (
        Admission.objects.filter(endpoint=endpoint)
        .order_by("message_id")
        .values_list(
            "message_id",
            "message__tenant_id",
            "message__created_at",
            "message__status",
            "message__claimed_until",
            "lease_until",
            "cap",
            "notified_at",
        )[:_MAX_ENTRIES]
    )
    return [Entry(*row) for row in rows]


def _fill(
    endpoint: ModelEndpoint, entries: list[Entry], now: datetime, mine: int | None = None
) -> tuple[Line, list[int]]:
    """Grant the free slots to the next waiting questions, and forget the finished ones.
    Returns the line before the grants, and the ids granted; the others' tasks are sent
    once this commits (`mine`, the caller's own question, goes on in this worker)."""
    if stale := [e.message_id for e in entries if e.stale]:
        Admission.objects.filter(pk__in=stale).delete()
    line = line_up(entries, now)
    given = [e.message_id for e in line.waiting[: line.free]]
    if given:
        Admission.objects.filter(pk__in=given).update(lease_until=_lease_end())
    if others := [message_id for message_id in given if message_id != mine]:
        # Due now; a question some worker holds meanwhile finds its lease when it parks.
        Message.objects.filter(pk__in=others, status=_QUEUED).update(claimed_until=None)
        transaction.on_commit(lambda: question_granted.send(sender=Admission, message_ids=others))
    return line, given


def _lease_end() -> datetime:
    return timezone.now() + timedelta(seconds=settings.IM_ADMISSION_LEASE_SECONDS)
