"""Model admission: how many answers each model endpoint works on at once, and whose turn
is next.

Ollama works on a few requests at once (OLLAMA_NUM_PARALLEL) and makes the rest wait where
no one sees them; and a worker waiting on a hung endpoint is a worker lost to every tenant.
So each endpoint (a model server: turns.endpoint_key) has a number of slots: the smallest
`max_concurrency` among the tenants whose questions are there now.

A question takes its place in its endpoint's line as it arrives (`enter`, at the intake):
an `Admission` row without a lease. A worker that claims it asks for a slot (`admit`):
granted, the row holds a lease, renewed as tokens come, so that a killed worker's slot
frees itself once the lease runs out; not granted, the question goes back to the queue
until its wake-up (`park`) and waits in the database, holding no worker. The answer that
frees a slot grants it to the next in line (turns.line_up) and has its task sent (the
`question_granted` signal: tasks.py, the one module that talks to the broker, sends it);
so does a question that leaves the line holding a slot granted to it (`leave`).
Every decision is made under a lock on the endpoint's row (SELECT … FOR NO KEY UPDATE on
PostgreSQL, which leaves alone the intakes' foreign key checks on that row; SQLite has one
write lock), so the cap holds across worker processes. Taking
a slot, renewing and giving it up commit without waiting for the disk (the `{relaxed}`
of the statements below); parking a question and waking one write its row, and wait.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists
from django.db.models.expressions import RawSQL
from django.utils import timezone

from common import metrics
from common.postgresql import commit_lasting, prepared_cursor, relaxed_commit
from tenants.models import Tenant

from .claims import Claim, RetryLater, ms_between
from .models import Admission, Message, ModelEndpoint
from .signals import question_granted
from .turns import Entry, Line, Waiting, endpoint_key, line_up

logger = logging.getLogger(__name__)

# Weight of the newest answer in an endpoint's moving average of answer times, and how
# far from the average an answer must be to move it.
_RECENT, _CLOSE = 0.2, 0.1
# Of the questions waiting at an endpoint, each tenant's first this many are read to
# decide the turns: more than the most slots an endpoint may have (max_concurrency is at
# most 64) with a margin for rows among them that no longer wait (a claim run out), so
# every grant is decided as if all were read; no more, since every admission reads them.
_PER_TENANT = 80
# Read at most this many questions of one endpoint (oldest first) to decide its turns.
_MAX_ENTRIES = 2000
_ENDPOINTS, _ADMISSIONS, _MESSAGES = (
    ModelEndpoint._meta.db_table,
    Admission._meta.db_table,
    Message._meta.db_table,
)
# The endpoint's row with the questions at it that decide its turns, in one statement: it
# runs for every message, and a burst puts thousands in line. Every question holding a
# lease (or whose lease ran out), each tenant's first _PER_TENANT without one, and the
# caller's own; each row also says how many of the caller's tenant's, left unread, came
# before the caller's. Parameters: the endpoint's id, the caller's id and tenant (0: no
# caller). `_LINE_SQL` numbers every question in line; PostgreSQL's finds each tenant's
# first ones by an index (admission_waiting_idx), the tenants by a loose index scan.
_COLUMNS = """e.id, e.served, e.answer_seconds, a.message_id, m.tenant_id, m.created_at,
    m.status, m.claimed_until, a.lease_until, a.cap, a.notified_at"""
_LINE_SQL = f"""
    SELECT id, served, answer_seconds, message_id, tenant_id, created_at, status,
        claimed_until, lease_until, cap, notified_at, unread
    FROM (
        SELECT *, SUM(CASE WHEN place > {_PER_TENANT} AND message_id < %(mine)s
            AND tenant_id = %(tenant)s THEN 1 ELSE 0 END) OVER () AS unread
        FROM (
            SELECT {_COLUMNS}, CASE WHEN a.lease_until IS NULL THEN ROW_NUMBER() OVER (
                PARTITION BY m.tenant_id, a.lease_until IS NULL ORDER BY a.message_id
            ) ELSE 0 END AS place
            FROM {_ENDPOINTS} e
            LEFT JOIN {_ADMISSIONS} a ON a.endpoint_id = e.id
            LEFT JOIN {_MESSAGES} m ON m.id = a.message_id
            WHERE e.id = %(endpoint)s
        ) numbered
    ) counted
    WHERE place <= {_PER_TENANT} OR message_id = %(mine)s OR message_id IS NULL
    ORDER BY message_id
    LIMIT {_MAX_ENTRIES}
"""  # noqa: S608 - constant table names and numbers, values as parameters
_WAITING = f"{_ADMISSIONS} WHERE endpoint_id = %(endpoint)s AND lease_until IS NULL"
_LINE_PG_SQL = f"""
    WITH RECURSIVE tenants (tenant_id) AS (
        (SELECT tenant_id FROM {_WAITING} ORDER BY tenant_id LIMIT 1)
        UNION ALL
        SELECT (SELECT tenant_id FROM {_WAITING} AND tenant_id > t.tenant_id
            ORDER BY tenant_id LIMIT 1)
        FROM tenants t WHERE t.tenant_id IS NOT NULL
    ),
    chosen AS (
        SELECT first.* FROM tenants t CROSS JOIN LATERAL (
            SELECT message_id, lease_until, cap, notified_at FROM {_WAITING}
                AND tenant_id = t.tenant_id
            ORDER BY message_id LIMIT {_PER_TENANT}
        ) first
        UNION SELECT message_id, lease_until, cap, notified_at FROM {_ADMISSIONS}
            WHERE endpoint_id = %(endpoint)s AND lease_until IS NOT NULL
        UNION SELECT message_id, lease_until, cap, notified_at FROM {_ADMISSIONS}
            WHERE endpoint_id = %(endpoint)s AND message_id = %(mine)s
    )
    SELECT {_COLUMNS}, GREATEST((
            SELECT count(*) FROM {_WAITING} AND tenant_id = %(tenant)s
                AND message_id < %(mine)s
        ) - {_PER_TENANT}, 0)
    FROM {_ENDPOINTS} e
    LEFT JOIN (
        -- The limit keeps the planner's estimate, hence its cost, small: past a cost of
        -- 100,000 PostgreSQL compiles the query (JIT), 20 to 200 ms each time.
        (SELECT * FROM chosen ORDER BY message_id LIMIT {_MAX_ENTRIES}) a
        CROSS JOIN LATERAL (
            SELECT tenant_id, created_at, status, claimed_until FROM {_MESSAGES}
            WHERE id = a.message_id LIMIT 1  -- one lookup a row, never a scan of them all
        ) m
    ) ON TRUE
    WHERE e.id = %(endpoint)s
    ORDER BY a.message_id
"""  # noqa: S608 - constant table names and numbers, values as parameters
# {relaxed} in these statements: relaxed_commit() (common/postgresql). A crash of the
# database may lose a slot given up (held until its lease runs out), or taken or renewed
# (granted again meanwhile: the endpoint runs one answer over its cap for a while).
_LOCK_SQL = f"SELECT id, {{relaxed}} FROM {_ENDPOINTS} WHERE key = %s{{lock}}"  # noqa: S608
# A new question's place in line, at an endpoint that exists already; a place a worker
# gave it first is kept (at an endpoint's first question the intake lines it up after its
# commit, when the dispatcher has sent its task already; the sweep may too). The
# endpoint's row is locked first ({lock}: FOR SHARE, which waits for an admission under
# way, as a worker locks that row before it reads the line): else this statement could
# take the question's place between that worker's reading of the line and its insert.
_ENTER_SQL = f"""
    INSERT INTO {_ADMISSIONS} (message_id, endpoint_id, tenant_id, cap)
    SELECT %s, id, %s, %s FROM {_ENDPOINTS} WHERE key = %s{{lock}}
    ON CONFLICT (message_id) DO NOTHING
"""  # noqa: S608 - constant table names, values as parameters
# The hot path's other statements, as plain SQL: the ORM's delete alone takes a
# transaction of its own (three round trips for one statement).
_FORGET_SQL = f"DELETE FROM {_ADMISSIONS} WHERE message_id = %s"  # noqa: S608
# A question out of the line; its endpoint and lease, if a slot was granted to it, to hand
# that on.
_LEAVE_SQL = f"""
    DELETE FROM {_ADMISSIONS} WHERE message_id = %s
    RETURNING (SELECT key FROM {_ENDPOINTS} WHERE id = endpoint_id), lease_until
"""  # noqa: S608 - constant table names, values as parameters
# Found from the messages' side (msg_pending_idx): a line of thousands whose tasks are on
# their way has only a few such rows.
_WAITS_SQL = f"""
    SELECT 1 FROM {_MESSAGES} m JOIN {_ADMISSIONS} a ON a.message_id = m.id
    WHERE m.status IN ('{Message.Status.QUEUED}', '{Message.Status.ANSWERING}')
        AND m.claimed_until IS NOT NULL
        AND a.endpoint_id = %(endpoint)s AND (a.lease_until IS NULL OR a.lease_until <= %(now)s)
    LIMIT 1
"""  # noqa: S608 - constant table names and values, values as parameters
# The slot given up in the same statement, unless such a question waits.
_GIVE_UP_SQL = f"""
    DELETE FROM {_ADMISSIONS} WHERE message_id = %(message)s AND NOT EXISTS ({_WAITS_SQL})
    RETURNING message_id, {{relaxed}}
"""  # noqa: S608 - constant table names, values as parameters
# An answer's time moves its endpoint's moving average of answer times, computed by the
# database, so that no lock is needed.
_LEARN_SQL = f"""
    UPDATE {_ENDPOINTS} SET answer_seconds = COALESCE(
        answer_seconds * {1 - _RECENT} + %(seconds)s * {_RECENT}, %(seconds)s
    )
    WHERE id = %(endpoint)s
    RETURNING {{relaxed}}
"""  # noqa: S608 - constant table names and numbers, values as parameters
_LEASE_SQL = f"""
    UPDATE {_ADMISSIONS} SET lease_until = %s WHERE message_id IN ({{ids}}) RETURNING {{relaxed}}
"""  # noqa: S608
# When its asker was last told where a question stands; {relaxed}: lost to a crash of
# the database before this connection's next durable commit (the question's park, right
# after), they may be told again.
_NOTIFIED_SQL = f"""
    UPDATE {_ADMISSIONS} SET notified_at = %s WHERE message_id = %s RETURNING {{relaxed}}
"""  # noqa: S608
# A question back in the queue until its wake-up (`park`), its try not counted. Its queue
# wait is written, so that the wake-up's claim does not count it again.
_PARK_SQL = f"""
    UPDATE {_MESSAGES} SET status = '{Message.Status.QUEUED}', claimed_until = %s,
        attempts = attempts - 1, queue_wait_ms = %s
    WHERE id = %s
"""  # noqa: S608 - constant table names and values, values as parameters


def place(tenant: Tenant) -> tuple[str, int]:
    """Where a new question of `tenant` lines up: its model endpoint's key, and the cap
    the tenant asks for there."""
    return endpoint_key(tenant.endpoint), tenant.max_concurrency


def enter(question: Message, tenant: Tenant) -> None:
    """A new question (just stored, queued for the model) takes its place in its model
    endpoint's line: its place is its arrival, whenever a worker gets to it. (On
    PostgreSQL the intake's own statement does this, at an endpoint that has a row.)"""
    key, cap = place(tenant)
    params: list[int | str] = [question.pk, question.tenant_id, cap, key]
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
    enter_sql = _ENTER_SQL.format(lock=lock)
    with connection.cursor() as cursor:
        cursor.execute(enter_sql, params)
        if cursor.rowcount == 0:  # the endpoint's first question, or in line already
            ModelEndpoint.objects.get_or_create(key=key)
            cursor.execute(enter_sql, params)


def admit(question: Claim, endpoint: str) -> Lease | Waiting:
    """A slot on `endpoint` for `question` (this worker's claim), or where it stands in line.

    A question found in another endpoint's line (its tenant changed endpoints, or it was
    handed to the fallback) or in none (a retry) lines up here by its arrival.
    """
    row = question.row
    now = timezone.now()
    key = endpoint_key(endpoint)
    relaxed = relaxed_commit()
    with transaction.atomic():
        locked, entries, unread = _line(key, row, relaxed)
        mine = next((e for e in entries if e.message_id == row.pk), None)
        if mine is not None and mine.holds(now):  # granted while it waited
            _lease([row.pk], _lease_end())
            return _admitted(question, locked)
        if mine is None:
            Admission.objects.filter(pk=row.pk).delete()
            cap = row.tenant.max_concurrency
            Admission.objects.create(message=row, endpoint=locked, tenant_id=row.tenant_id, cap=cap)
        elif mine.lease_until is not None:
            # Granted, but its task came after the lease ran out: in line again, in its place.
            _lease([row.pk], None)
            entries.remove(mine)
        if mine is None or mine.lease_until is not None:
            mine = Entry(  # as this claim sees it: waiting, held by this worker
                message_id=row.pk,
                tenant_id=row.tenant_id,
                arrived=row.created_at,
                status=Message.Status.ANSWERING,
                claimed_until=row.claimed_until,
                lease_until=None,
                cap=row.tenant.max_concurrency,
                notified_at=mine.notified_at if mine else None,
            )
            entries.append(mine)
        line, given = _fill(locked, entries, now, mine=row.pk)
    if row.pk in given:
        return _admitted(question, locked)
    granted_ends = [_lease_end()] if given else []
    return Waiting(
        # Its tenant's left unread are ahead of it too (other tenants' would take turns
        # with them: an estimate, then).
        ahead=line.waiting.index(mine) - len(given) + unread,
        in_flight=len(line.holding) + len(given),
        cap=line.cap,
        answer_seconds=locked.answer_seconds,
        notified_at=mine.notified_at,
        # A slot granted now runs out too if its question's task never comes.
        slot_ends=min(
            [e.lease_until for e in line.holding if e.lease_until] + granted_ends, default=None
        ),
    )


def park(question: Claim, endpoint: str, waiting: Waiting, until: datetime | None) -> Lease:
    """Give a waiting question back to the queue, holding no worker: due again at `until`
    (its next notice), when a slot in use may run out (if it is near enough the front to
    take that slot), or at the end of its budget, whichever comes first. Raises
    RetryLater, due then; returns its Lease instead if it was granted a slot meanwhile
    (while its asker was told where it stands), or finds one free now (an answer that
    ended since it asked, and saw no one waiting).

    The claim did no work, so its try is not counted: `attempts` goes back down.
    """
    row = question.row
    now = timezone.now()
    budget_end = now + timedelta(seconds=question.seconds_left() or 0)
    # Further back, waking for a slot that may run out would only read the line again.
    slot_ends = waiting.slot_ends if waiting.ahead < waiting.cap else None
    wake = min(t for t in (until, slot_ends, budget_end) if t is not None)
    key = endpoint_key(endpoint)
    # Not relaxed: a wake-up lost to a crash would hold the question until its claim ran
    # out, past its answer budget.
    with transaction.atomic():
        locked, entries, _ = _line(key, row)
        mine = next((e for e in entries if e.message_id == row.pk), None)
        if mine is not None and mine.holds(now):
            return _admitted(question, locked)
        if row.pk in _fill(locked, entries, now, mine=row.pk)[1]:
            return _admitted(question, locked)
        at = connection.ops.adapt_datetimefield_value
        _execute(_PARK_SQL, [at(wake), row.queue_wait_ms, row.pk])
    raise RetryLater(row.pk, row.role, max((wake - now).total_seconds(), 0))


def notified(message_id: int, at: datetime) -> None:
    """Its asker was just told where the question stands."""
    notified_at = connection.ops.adapt_datetimefield_value(at)
    _execute(_NOTIFIED_SQL.format(relaxed=relaxed_commit()), [notified_at, message_id])


def due_now(message_id: int) -> None:
    """A question waiting its turn is due at once, not at its next wake-up: a stop takes
    it from the line now (stops.py)."""
    waiting = Admission.objects.filter(pk=message_id, lease_until__isnull=True)
    Message.objects.filter(pk=message_id, status=Message.Status.QUEUED).filter(
        Exists(waiting)
    ).update(claimed_until=None)


def leave(message_id: int) -> None:
    """The question failed for good, was stopped, or is never to be asked (over its quota,
    refused by its tenant's settings): out of its endpoint's line, if still in it. Call it outside
    a transaction: it takes the endpoint's lock after its own DELETE has committed.

    Its claim may come after a slot was granted to it (while parked, or with its first
    task on its way): that slot goes to the next in line now, not at the next reading of
    the line. (A question without a slot that leaves may raise the endpoint's cap, the
    smallest of the tenants present; that waits for the next reading.) Raises
    DatabaseError if the question cannot be taken out; a failure to hand its slot on is
    only logged (the slot is free, and the next reading of the line grants it).
    """
    left = _execute(_LEAVE_SQL, [message_id])
    if not left or left[0][1] is None:
        return
    try:
        with transaction.atomic():
            endpoint, entries, _ = _line(left[0][0])
            _fill(endpoint, entries, timezone.now())
    except DatabaseError:
        logger.warning("could not hand on the model slot of message %s", message_id)


class Lease:
    """A question's slot on its endpoint. A context manager: leaving it frees the slot and
    grants it to the next in line."""

    def __init__(self, endpoint: ModelEndpoint | None, message_id: int, tenant_id: int):
        """`endpoint`: its row as read when the slot was taken; None: no slot held."""
        self.endpoint = endpoint
        self.message_id = message_id
        self.tenant_id = tenant_id
        self.renewed = time.monotonic()
        self.answer_seconds: float | None = None  # set by the caller once the model answered

    @classmethod
    def unheld(cls) -> Lease:
        """No slot, for a question that needs none (stopped before the model is asked)."""
        return cls(None, 0, 0)

    def renew(self) -> None:
        """The answer is alive (a token came): extend the lease, at most every quarter of
        its length. A failure is only logged: the answer matters more than its slot."""
        if (
            self.endpoint is None
            or time.monotonic() - self.renewed < settings.IM_ADMISSION_LEASE_SECONDS / 4
        ):
            return
        self.renewed = time.monotonic()
        try:
            _lease([self.message_id], _lease_end())
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
        """Free the slot and grant it on if a question waits parked, under the endpoint's
        lock, which keeps whose turn is next. When none does, the slot is given up
        without the lock (one statement), then the line looked at again: a question
        parked meanwhile is either seen then, or saw the free slot itself (`park` looks
        under the lock after its row is written). The answer's time is kept for
        estimates. With the database away the lease runs out on its own.
        """
        if (endpoint := self.endpoint) is None:
            return
        try:
            now = connection.ops.adapt_datetimefield_value(timezone.now())
            given_up = {"message": self.message_id, "endpoint": endpoint.pk, "now": now}
            relaxed = relaxed_commit()
            give_up = _GIVE_UP_SQL.format(relaxed=relaxed)
            if _execute(give_up, given_up) and not _someone_waits(endpoint.pk):
                _learn(endpoint, self.answer_seconds)
                _served_unless_alone(endpoint, self.tenant_id)
                return
            with transaction.atomic():
                endpoint, entries, _ = _line(endpoint.key, relaxed=relaxed)
                _execute(_FORGET_SQL, [self.message_id])
                entries = [e for e in entries if e.message_id != self.message_id]
                _served(endpoint, self.tenant_id)
                _learn(endpoint, self.answer_seconds)
                _fill(endpoint, entries, timezone.now())
        except DatabaseError:
            logger.warning("could not free the model slot of message %s", self.message_id)


def _admitted(question: Claim, endpoint: ModelEndpoint) -> Lease:
    row = question.row
    if row.attempts == 1 and not row.fallback:  # a retry's wait would count its tries too
        now = timezone.now()
        # The queue wait the row shows runs to its slot.
        row.queue_wait_ms = ms_between(row.created_at, now)
        seconds = row.queue_wait_ms / 1000
        label = metrics.endpoint_label(endpoint.key)
        metrics.ADMISSION_WAIT_SECONDS.labels(label).observe(seconds)
    return Lease(endpoint, row.pk, row.tenant_id)


def _someone_waits(endpoint_id: int) -> bool:
    """Whether a question at the endpoint waits for a freed slot to be handed to it: one
    without a running lease that a worker parked or is checking on. One whose first task
    is on its way needs no hand-over: that task takes a free slot in its turn (`admit`
    lines everyone up under the lock)."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    return bool(_execute(_WAITS_SQL, {"endpoint": endpoint_id, "now": now}))


def _learn(endpoint: ModelEndpoint, answer_seconds: float | None) -> None:
    """Move the endpoint's moving average of answer times towards an answer that took
    `answer_seconds` (None: the model did not answer). Written only when the answer is
    more than a tenth off the average known here (estimates are rounded to 5 s anyway)."""
    known = endpoint.answer_seconds
    if answer_seconds is None or (
        known is not None and abs(answer_seconds - known) <= _CLOSE * known
    ):
        return
    learn = _LEARN_SQL.format(relaxed=relaxed_commit())
    _execute(learn, {"endpoint": endpoint.pk, "seconds": answer_seconds})


def _lease(message_ids: list[int], until: datetime | None) -> None:
    """Set the lease of these questions' slots to end `until` (None: no slot)."""
    placeholders = ", ".join(["%s"] * len(message_ids))
    until_value = connection.ops.adapt_datetimefield_value(until)
    lease = _LEASE_SQL.format(ids=placeholders, relaxed=relaxed_commit())
    _execute(lease, [until_value, *message_ids])


def _execute(sql: str, params: list[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run one statement (prepared, on PostgreSQL); the rows it returned, if any."""
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _served_unless_alone(endpoint: ModelEndpoint, tenant_id: int) -> None:
    """`_served`, for an answer that ended without the lock (no one parked): round-robin's
    ties still need whose answer ended last, for the questions whose tasks are on their
    way. Nothing to write where the tenant is the endpoint's only one."""
    if len(endpoint.served) > 1 or str(tenant_id) not in endpoint.served:
        relaxed = RawSQL(relaxed_commit(), ())  # noqa: S611 - a constant expression
        with transaction.atomic():
            locked = ModelEndpoint.objects.select_for_update(no_key=True).only("served")
            _served(locked.annotate(relaxed=relaxed).get(pk=endpoint.pk), tenant_id)


def _served(endpoint: ModelEndpoint, tenant_id: int) -> None:
    """Keep on the endpoint's row (locked) that the tenant was just served: its answer
    ended while others waited. Unchanged if it was the last served already."""
    latest = max(endpoint.served.values(), default=0)
    if endpoint.served.get(str(tenant_id)) != latest or not latest:
        endpoint.served[str(tenant_id)] = latest + 1
        ModelEndpoint.objects.filter(pk=endpoint.pk).update(served=endpoint.served)


def _line(
    key: str, mine: Message | None = None, relaxed: str = "NULL"
) -> tuple[ModelEndpoint, list[Entry], int]:
    """The endpoint's row, locked until the transaction ends (created on first use); the
    questions at it that decide its turns (_LINE_SQL), with question `mine` if in line,
    oldest first; and how many of its tenant's, left unread, came before `mine`.
    `relaxed`: relaxed_commit(), asked before the transaction began, so that a
    transaction of the caller's own commits without waiting for the disk (unless
    `_fill` wakes a parked question in it: see `_LOCK_SQL`'s comment).

    The lock is taken by a statement of its own, before the line is read: a statement
    that waited for a lock still reads the other tables as they were when it began
    (PostgreSQL's READ COMMITTED), and would miss the grants the lock's holder just made.
    It is FOR NO KEY UPDATE, which excludes every other admission (and `enter`) but not an
    intake checking, for its question's place in line, that the endpoint's row exists (a
    foreign key's FOR KEY SHARE): a callback's statement never waits for a worker deciding
    turns.
    """
    lock = " FOR NO KEY UPDATE" if connection.vendor == "postgresql" else ""
    with prepared_cursor() as cursor:
        lock_sql = _LOCK_SQL.format(lock=lock, relaxed=relaxed)
        cursor.execute(lock_sql, [key])
        if (locked := cursor.fetchone()) is None:
            ModelEndpoint.objects.bulk_create([ModelEndpoint(key=key)], ignore_conflicts=True)
            cursor.execute(lock_sql, [key])
            locked = cursor.fetchone()
        me = {"mine": mine.pk, "tenant": mine.tenant_id} if mine else {"mine": 0, "tenant": 0}
        line = _LINE_PG_SQL if connection.vendor == "postgresql" else _LINE_SQL
        cursor.execute(line, {"endpoint": locked[0], **me})
        rows = cursor.fetchall()
    endpoint_id, served, answer_seconds = rows[0][:3]
    served = json.loads(served) if isinstance(served, str) else served
    endpoint = ModelEndpoint(id=endpoint_id, key=key, served=served, answer_seconds=answer_seconds)
    entries = [
        Entry(
            message_id=row[3],
            tenant_id=row[4],
            arrived=_moment(row[5]) or timezone.now(),
            status=row[6],
            claimed_until=_moment(row[7]),
            lease_until=_moment(row[8]),
            cap=row[9],
            notified_at=_moment(row[10]),
        )
        for row in rows
        if row[3] is not None  # an endpoint without questions: its row alone
    ]
    return endpoint, entries, int(rows[0][11] or 0)


def _moment(value: datetime | str | None) -> datetime | None:
    """A timestamp as the database driver gave it (SQLite's: naive, or text, in UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _fill(
    endpoint: ModelEndpoint,
    entries: list[Entry],
    now: datetime,
    *,
    mine: int | None = None,
) -> tuple[Line, list[int]]:
    """Grant the free slots to the next in line, and forget the finished questions.
    Returns the line before the grants, and the ids granted.

    A question granted while it waited parked is woken (its task sent once this commits);
    one whose first task has not run yet is not (that task is on its way), nor `mine`,
    the caller's own question, which goes on in this worker.
    """
    if stale := [e.message_id for e in entries if e.stale]:
        Admission.objects.filter(pk__in=stale).delete()
    line = line_up(entries, now, endpoint.served)
    given = line.waiting[: line.free]
    if not given:
        return line, []
    ids = [e.message_id for e in given]
    _lease(ids, _lease_end())
    parked = [e.message_id for e in given if e.status == Message.Status.QUEUED and e.claimed_until]
    if parked := [message_id for message_id in parked if message_id != mine]:
        commit_lasting()  # a wake-up lost to a crash would leave them parked
        Message.objects.filter(pk__in=parked, status=Message.Status.QUEUED).update(
            claimed_until=None  # due now
        )
        transaction.on_commit(lambda: question_granted.send(sender=Admission, message_ids=parked))
    return line, ids


def _lease_end() -> datetime:
    return timezone.now() + timedelta(seconds=settings.IM_ADMISSION_LEASE_SECONDS)
