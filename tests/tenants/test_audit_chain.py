"""The audit trail's hash chain: appended in order, refused edits on PostgreSQL, and
`verify_audit` catching a row edited, deleted or moved behind the product's back."""

import io
import threading

import pgtrigger
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from tenants.audit import Actor, record
from tenants.audit_models import AuditEvent
from tenants.audit_verify import verify_chain
from tenants.models import Tenant
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

TABLE = AuditEvent._meta.db_table
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
ROBOT = Actor.system("test")


def events(tenant, count):
    return [
        record(AuditEvent.Action.VIEW, tenant=tenant, actor=ROBOT, detail={"n": n})
        for n in range(count)
    ]


def verify_audit(*args):
    """verify_audit's output and exit status (CommandError carries it)."""
    out = io.StringIO()
    try:
        call_command("verify_audit", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc.returncode, str(exc)
    return out.getvalue(), 0, ""


def behind_the_back(sql, params=()):
    """Raw SQL, as someone with database access might run it; on PostgreSQL with the
    append-only trigger ignored, as the table's owner could switch it off."""
    with pgtrigger.ignore("tenants.AuditEvent:audit_append_only"), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_it_chains_each_tenants_events_from_an_empty_link(tenant_a, tenant_b):
    first, second = events(tenant_a, 2)
    other = events(tenant_b, 1)[0]
    operator = record(AuditEvent.Action.SIGN_IN, tenant=None, actor=Actor(label="root"))
    assert first.prev_hash == "" and second.prev_hash == first.hash
    assert other.prev_hash == "" and operator.prev_hash == ""
    assert (first.tenant_id, first.tenant_slug) == (tenant_a.pk, "tenant-a")
    assert operator.tenant_id is None


def test_the_hash_covers_the_content_and_the_previous_hash(tenant_a):
    event = events(tenant_a, 1)[0]
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.compute_hash() == stored.hash == event.hash
    for field, value in [("detail", {"n": 99}), ("actor_label", "x"), ("prev_hash", "0" * 64)]:
        setattr(stored, field, value)
        assert stored.compute_hash() != event.hash


def test_values_come_back_from_the_database_as_they_were_hashed(tenant_a):
    odd = {"float": 1e16, "whole": 2.0, "nul": "a\x00b", "when": tenant_a.created_at, 3: "int key"}
    event = record(
        AuditEvent.Action.CHANGE, tenant=tenant_a, actor=ROBOT, detail=odd, changes={"x": odd}
    )
    assert AuditEvent.objects.get(pk=event.pk).compute_hash() == event.hash
    assert event.detail["nul"] == "a\ufffdb" and "3" in event.detail


def test_record_needs_a_request_or_an_actor(tenant_a):
    with pytest.raises(ValueError, match="request or an actor"):
        record(AuditEvent.Action.VIEW, tenant=tenant_a)


def test_verify_audit_reports_every_chain_ok(tenant_a, tenant_b):
    head_a = events(tenant_a, 3)[-1].hash
    head_b = events(tenant_b, 2)[-1].hash
    operator = record(AuditEvent.Action.SIGN_IN, tenant=None, actor=Actor(label="root"))
    out, status, _ = verify_audit()
    assert status == 0
    assert out.splitlines() == [
        f"operator: 1 events checked, OK. Head hash: {operator.hash}",
        f'tenant "tenant-a" (id {tenant_a.pk}): 3 events checked, OK. Head hash: {head_a}',
        f'tenant "tenant-b" (id {tenant_b.pk}): 2 events checked, OK. Head hash: {head_b}',
        "3 chains, 6 events: all verify.",
    ]


def test_verify_audit_names_an_event_edited_behind_the_products_back(tenant_a, tenant_b):
    chain = events(tenant_a, 4)
    events(tenant_b, 2)
    behind_the_back(f"UPDATE {TABLE} SET detail = %s WHERE id = %s", ['{"n": 7}', chain[1].pk])
    out, status, error = verify_audit()
    assert status == 1 and error == "1 of 2 chains do not verify."
    line = out.splitlines()[0]
    assert line.startswith(
        f'tenant "tenant-a" (id {tenant_a.pk}): MISMATCH after 1 good events. '
        f"First bad event: id {chain[1].pk} at {chain[1].created_at.isoformat(sep=' ')}: "
        "its content hashes to "
    )
    assert f"but its recorded hash is {chain[1].hash} (the row was changed" in line
    assert "tenant-b" in out.splitlines()[1] and "OK" in out.splitlines()[1]


def test_verify_audit_names_the_event_after_a_deleted_one(tenant_a):
    chain = events(tenant_a, 4)
    behind_the_back(f"DELETE FROM {TABLE} WHERE id = %s", [chain[2].pk])
    out, status, _ = verify_audit("--tenant", "tenant-a")
    assert status == 1
    assert f"MISMATCH after 2 good events. First bad event: id {chain[3].pk}" in out
    assert f"broken link: its prev_hash is {chain[2].hash}" in out
    assert f"but the event before it (id {chain[1].pk}) has hash {chain[1].hash}" in out


def test_verify_audit_names_a_moved_event(tenant_a):
    chain = events(tenant_a, 4)
    first, second = chain[1].pk, chain[2].pk
    behind_the_back(f"UPDATE {TABLE} SET id = -1 WHERE id = %s", [first])
    behind_the_back(f"UPDATE {TABLE} SET id = %s WHERE id = %s", [first, second])
    behind_the_back(f"UPDATE {TABLE} SET id = %s WHERE id = -1", [second])
    report = verify_chain(tenant_a.pk)
    assert (report.checked, report.bad.pk) == (1, first)
    assert report.problem.startswith(f"broken link: its prev_hash is {chain[1].hash}")


def test_verify_audit_catches_a_forged_first_event(tenant_a):
    chain = events(tenant_a, 2)
    behind_the_back(f"DELETE FROM {TABLE} WHERE id = %s", [chain[0].pk])
    report = verify_chain(tenant_a.pk)
    assert report.bad.pk == chain[1].pk and "it is the chain's first" in report.problem


def test_verify_audit_finds_a_deleted_tenants_chain_by_its_slug(tenant_a):
    events(tenant_a, 2)
    Tenant.objects.filter(pk=tenant_a.pk).delete()  # no foreign key: the chain stays
    out, status, _ = verify_audit("--tenant", "tenant-a")
    assert status == 0 and "2 events checked, OK" in out


def test_verify_audit_refuses_an_unknown_tenant():
    out, status, error = verify_audit("--tenant", "nobody")
    assert status == 1 and error == 'no tenant "nobody" and no events of one'


@on_postgresql
def test_the_database_refuses_update_and_delete(tenant_a):
    event = events(tenant_a, 1)[0]
    rows = AuditEvent.objects.filter(pk=event.pk)
    for write in (lambda: rows.update(detail={}), rows.delete):
        with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
            write()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")
    assert rows.get().hash == event.hash


def test_the_database_refuses_a_fork_of_a_chain(tenant_a):
    first = events(tenant_a, 2)[0]
    fork = AuditEvent(
        created_at=first.created_at, tenant_id=tenant_a.pk, actor_label="x", action="view",
        prev_hash=first.prev_hash, hash="f" * 64,
    )  # fmt: skip
    with pytest.raises(DatabaseError), transaction.atomic():
        fork.save()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_one_chain_line_up():
    """Threads, each with its own database connection, append to one tenant's chain at
    once: without the chain's lock, two would read the same last event."""
    tenant = TenantFactory(slug="busy")
    threads, per_thread = 4, 10
    start = threading.Barrier(threads)
    errors = []

    def write(n):
        try:
            start.wait()
            for i in range(per_thread):
                record(AuditEvent.Action.VIEW, tenant=tenant, actor=ROBOT, detail={"t": n, "i": i})
        except Exception as exc:  # reported below, with the thread's cause
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    chain = list(AuditEvent.objects.filter(tenant_id=tenant.pk).order_by("id"))
    assert len(chain) == threads * per_thread
    assert len({event.prev_hash for event in chain}) == len(chain)
    report = verify_chain(tenant.pk)
    assert (report.checked, report.bad) == (threads * per_thread, None)
