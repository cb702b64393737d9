"""Retention: message content older than its tenant's `retention_days` is deleted or
redacted (the tenant's `retention_action`), by the nightly beat task or `purge_expired`.

- Redact clears a row's texts (`content`, `error`, and `reply_context`, which holds
  names and reply addresses) and stamps `redacted_at`. Status, tokens, timings, model,
  bot, sender and chat stay, so usage, the dashboard and the API's usage count the row
  as before. Redacted rows drop out of the model's context.
- Delete removes the rows (a question takes its answer along) and the conversations left
  without a message.
- A tenant under legal hold is never touched. The hold and the retention are read again,
  with the tenant's row locked, before every batch: once an operator's hold is saved, a
  purge already running stops before its next batch.
- Work goes in batches of RETENTION_BATCH_SIZE messages, each in a transaction of its own
  that reads the batch's ids (the msg_retention_idx range of the tenant and creation
  time, oldest first) and updates or deletes those rows by id. Only the batch's rows are
  locked, for one batch's time; inserts of new messages never wait. The tenant's row is
  locked FOR NO KEY UPDATE, which inserts referencing it do not wait for either.
- Rows still queued or being answered are left for a later night: redacting an answer
  that is yet to be delivered would send an empty message.
- A bot's last error is a copy of a message's error: older than the cutoff, its text is
  cleared too (its time stays, for the bot's health). Live text lives in the cache only,
  and expires within the hour.
- Each tenant's run that purged something is one `purge` event in its audit trail, with
  the counts. A run with nothing to do writes nothing: the trail records what happened
  to the data, and a daily "nothing" per tenant would bury those events.
- The dashboard's rollup recomputes today and yesterday from the log; MIN_RETENTION_DAYS
  keeps retention off those days (tenants/models.py), and `first_whole_day` keeps a
  recomputation of older days off those whose messages were deleted (rollup.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from channels_im.models import Bot
from tenants import audit
from tenants.models import Tenant

from .models import Conversation, Message

Action = Tenant.RetentionAction
# Still someone's work in progress: a claim may yet write or send these rows.
IN_PROGRESS = (Message.Status.QUEUED, Message.Status.ANSWERING)


@dataclass(frozen=True)
class Purge:
    """One tenant's run: what it deleted or redacted (for a dry run, would)."""

    tenant: Tenant
    action: str  # Tenant.RetentionAction
    cutoff: datetime  # content created before this goes
    messages: int = 0
    conversations: int = 0  # deleted for being left empty (delete only)


def cutoff(tenant: Tenant, now: datetime) -> datetime:
    return now - timedelta(days=tenant.retention_days)


def first_whole_day(tenant: Tenant, now: datetime | None = None) -> date | None:
    """The first day (TIME_ZONE's) all of whose messages are still in the log, or None
    if the tenant deletes none. Its rollup figures may be recomputed from the log; those
    of the days before must be left as they are."""
    if tenant.retention_days == 0 or tenant.retention_action != Action.DELETE:
        return None
    start = cutoff(tenant, now or timezone.now())
    return timezone.localdate(start, timezone.get_default_timezone()) + timedelta(days=1)


def subject_to_retention() -> QuerySet[Tenant]:
    """The tenants whose content expires: a retention set, and no legal hold."""
    return Tenant.objects.filter(retention_days__gt=0, legal_hold=False).order_by("pk")


def expired(tenant: Tenant, before: datetime) -> QuerySet[Message]:
    """The tenant's messages created before `before` that are still to purge."""
    return Message.objects.filter(
        tenant=tenant, created_at__lt=before, redacted_at__isnull=True
    ).exclude(status__in=IN_PROGRESS)


def purge_all(actor: audit.Actor, now: datetime | None = None) -> list[Purge]:
    """`purge` every tenant subject to retention; the nightly beat task."""
    now = now or timezone.now()
    return [purge(tenant, actor=actor, now=now) for tenant in subject_to_retention()]


def purge(
    tenant: Tenant,
    *,
    actor: audit.Actor,
    now: datetime | None = None,
    batch_size: int | None = None,
) -> Purge:
    """Delete or redact `tenant`'s content created more than `retention_days` before
    `now`, in batches of `batch_size` (RETENTION_BATCH_SIZE) messages, and record the run
    in the tenant's audit trail as `actor`'s. Returns the counts; zero for a tenant under
    legal hold or keeping everything, also one that became so during the run.

    Database errors propagate (a soft time limit too); what the batches committed before
    is recorded all the same.
    """
    now = now or timezone.now()
    done = Purge(tenant, tenant.retention_action, cutoff(tenant, now))
    try:
        while counts := _batch(done, now, batch_size or settings.RETENTION_BATCH_SIZE):
            done = replace(
                done,
                messages=done.messages + counts[0],
                conversations=done.conversations + counts[1],
            )
    finally:
        if done.messages or done.conversations:
            audit.record(
                audit.Action.PURGE,
                tenant=tenant,
                obj=Message,
                actor=actor,
                detail={
                    "action": done.action,
                    "cutoff": done.cutoff,
                    "messages": done.messages,
                    "conversations": done.conversations,
                },
            )
    return done


def _batch(run: Purge, now: datetime, size: int) -> tuple[int, int] | None:
    """One transaction: (messages, conversations) purged, or None when nothing is left
    or the tenant's hold or retention changed since the run began."""
    with transaction.atomic():
        if not _rules_stand(run):
            return None
        rows = list(
            expired(run.tenant, run.cutoff)
            .order_by("created_at")
            .values_list("pk", "conversation_id")[:size]
        )
        if not rows:
            _forget_bot_errors(run)
            return None
        ids = [pk for pk, _ in rows]
        if run.action == Action.DELETE:
            return _delete(ids, {conversation for _, conversation in rows}, run.cutoff)
        redacted = Message.objects.filter(pk__in=ids, redacted_at__isnull=True).update(
            content="", error="", reply_context={}, redacted_at=now
        )
        return redacted, 0


def _rules_stand(run: Purge) -> bool:
    """Lock the tenant's row and check it is still to purge as the run began. NO KEY:
    new messages (whose foreign key shares a lock on the row) need not wait."""
    tenant = run.tenant
    return bool(
        Tenant.objects.select_for_update(no_key=True)
        .filter(
            pk=tenant.pk,
            legal_hold=False,
            retention_days__gt=0,
            retention_days=tenant.retention_days,
            retention_action=run.action,
        )
        .values_list("pk", flat=True)
    )


def _delete(ids: list[int], conversation_ids: set[int], before: datetime) -> tuple[int, int]:
    _, deleted = Message.objects.filter(pk__in=ids).delete()
    # A conversation active since the cutoff is someone's open session: it stays even if
    # empty, so that a message arriving into it has its row.
    emptied = Conversation.objects.filter(
        pk__in=conversation_ids, last_activity_at__lt=before
    ).exclude(Exists(Message.objects.filter(conversation=OuterRef("pk"))))
    _, gone = emptied.delete()
    return deleted.get(Message._meta.label, 0), gone.get(Conversation._meta.label, 0)


def _forget_bot_errors(run: Purge) -> None:
    Bot.objects.filter(tenant=run.tenant, last_error_at__lt=run.cutoff).exclude(
        last_error=""
    ).update(last_error="")


def preview(tenant: Tenant, now: datetime | None = None) -> Purge:
    """What `purge` would do now, changing nothing (`purge_expired --dry-run`). Answers
    created after the cutoff that go along with their questions are not counted."""
    before = cutoff(tenant, now or timezone.now())
    rows = expired(tenant, before)
    emptied = 0
    if tenant.retention_action == Action.DELETE:
        kept = Q(created_at__gte=before) | Q(status__in=IN_PROGRESS)
        emptied = (
            Conversation.objects.filter(tenant=tenant, last_activity_at__lt=before)
            .filter(Exists(rows.filter(conversation=OuterRef("pk"))))
            .exclude(Exists(Message.objects.filter(kept, conversation=OuterRef("pk"))))
            .count()
        )
    return Purge(tenant, tenant.retention_action, before, rows.count(), emptied)
