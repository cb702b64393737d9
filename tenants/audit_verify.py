"""Checking the audit trail: each chain recomputed from its first event to its last.

An event does not match when its content no longer hashes to its recorded hash (the row
was edited), or when its `prev_hash` is not the hash of the event before it (an event
was deleted, inserted or moved). `verify_audit` prints what this finds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .audit_models import AuditEvent
from .models import Tenant


@dataclass(frozen=True)
class ChainReport:
    """One chain's result: `checked` events matched; `bad` is the first that did not
    (None: the whole chain matched), and `problem` says how."""

    tenant_id: int | None
    slug: str
    checked: int
    head: str  # the hash of the last event checked: note it to spot a cut-off tail later
    bad: AuditEvent | None = None
    problem: str = ""


def chain_ids(slug: str | None = None) -> list[int | None]:
    """The chains to check: all (None, the operator's, first), or the tenant's with this
    slug; a deleted tenant is found by the slug its events recorded. Raises LookupError
    for a slug that names neither."""
    if slug is None:
        events = AuditEvent.objects.order_by()
    elif tenant := Tenant.objects.filter(slug=slug).first():
        return [tenant.pk]
    else:
        events = AuditEvent.objects.filter(tenant_slug=slug).order_by()
    ids: list[int | None] = list(events.values_list("tenant_id", flat=True).distinct())
    if slug is not None and not ids:
        raise LookupError(slug)
    return sorted(ids, key=lambda pk: (pk is not None, pk or 0))


def verify_chain(tenant_id: int | None) -> ChainReport:
    """Walk one chain in insertion order and stop at the first event that does not match."""
    events = AuditEvent.objects.filter(tenant_id=tenant_id).order_by("id")
    checked, previous, slug = 0, None, ""
    for event in events.iterator(chunk_size=2000):
        slug = event.tenant_slug
        head = previous.hash if previous else ""
        problem = _problem(event, previous)
        if problem:
            return ChainReport(tenant_id, slug, checked, head, event, problem)
        checked, previous = checked + 1, event
    return ChainReport(tenant_id, slug, checked, previous.hash if previous else "")


def verify(tenant_ids: Iterable[int | None]) -> list[ChainReport]:
    return [verify_chain(tenant_id) for tenant_id in tenant_ids]


def _problem(event: AuditEvent, previous: AuditEvent | None) -> str:
    """How `event` fails to match, following `previous` (None: it is the first), or ""."""
    computed = event.compute_hash()
    if computed != event.hash:
        return (
            f"its content hashes to {computed}, but its recorded hash is {event.hash} "
            "(the row was changed after it was written)"
        )
    expected = previous.hash if previous else ""
    if event.prev_hash != expected:
        before = (
            f"the event before it (id {previous.pk}) has hash {expected}"
            if previous
            else "it is the chain's first, whose prev_hash is empty"
        )
        return (
            f"broken link: its prev_hash is {event.prev_hash or '(empty)'}, but {before} "
            "(an event was deleted, inserted or moved)"
        )
    return ""
