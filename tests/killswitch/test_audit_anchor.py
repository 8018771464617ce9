"""The audit chain cannot be emptied quietly: an anchor outside the database names every committed
record; verify-audit reads one snapshot while records are appended, and hashes addresses as
PostgreSQL returns them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from killswitch import anchor, audit, services
from killswitch.models import Action, AuditHead, AuditRecord
from tests.concurrency import race


def append(n: int, **fields: Any) -> list[AuditRecord]:
    rows = []
    for i in range(n):
        with transaction.atomic():
            rows.append(
                audit.record(action=Action.EXTERNAL_CHANGE, target="production", reason=f"#{i}", **fields)
            )
    return rows


def _as_superuser(sql: str) -> None:
    """What a database superuser can do despite the trigger: switch triggers off for the session."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def anchored(django_capture_on_commit_callbacks: Any, _audit_anchor: Path) -> list[AuditRecord]:
    """Three records, committed as far as the anchor is concerned, and anchored."""
    with django_capture_on_commit_callbacks(execute=True):
        rows = append(3)
    assert anchor.flush()
    assert _audit_anchor.read_text().splitlines()[-1].startswith(f"{rows[-1].seq} {rows[-1].digest} ")
    assert audit.verify() == (AuditRecord.objects.count(), [])
    return rows


@pytest.mark.django_db
def test_truncating_the_audit_table_is_found(anchored: list[AuditRecord]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE killswitch_auditrecord")  # row triggers do not see a TRUNCATE
    AuditHead.objects.filter(pk=1).update(seq=0, digest=audit.GENESIS)
    checked, findings = audit.verify()
    assert checked == 0
    assert [f.seq for f in findings] == [anchored[0].seq]
    assert "the anchor outside the database names them" in str(findings[0])
    with pytest.raises(CommandError, match="Audit chain broken"):
        call_command("killswitch", "verify-audit")


@pytest.mark.django_db
def test_rewriting_the_end_of_the_chain_is_found(anchored: list[AuditRecord]) -> None:
    last, before = anchored[-1], anchored[-2]
    _as_superuser(f"DELETE FROM killswitch_auditrecord WHERE seq = {int(last.seq)}")  # noqa: S608
    AuditHead.objects.filter(pk=1).update(seq=before.seq, digest=before.digest)
    findings = audit.verify()[1]
    assert [str(f) for f in findings] == [
        f"record #{last.seq}: missing: the anchor outside the database names it "
        "(the table was emptied or cut)"
    ]


@pytest.mark.django_db
def test_a_record_replaced_with_a_valid_digest_is_found(anchored: list[AuditRecord], settings: Any) -> None:
    """Someone holding the HMAC key rewrites the last record and the head: only the anchor can tell."""
    last = anchored[-1]
    _as_superuser(f"DELETE FROM killswitch_auditrecord WHERE seq = {int(last.seq)}")  # noqa: S608
    AuditHead.objects.filter(pk=1).update(seq=last.seq - 1, digest=last.prev_digest)
    with transaction.atomic():
        audit.record(action=Action.EXTERNAL_CHANGE, target="production", reason="nothing happened")
    findings = audit.verify()[1]
    assert [str(f) for f in findings] == [
        f"record #{last.seq}: replaced: its digest differs from the one anchored outside the database"
    ]


@pytest.mark.django_db(transaction=True)
def test_manage_py_flush_is_found(ks_files: Any, responder: Any, _audit_anchor: Path) -> None:
    services.killswitch_activate(target="production", actor=responder, reason="manual", message="drill")
    assert anchor.flush()
    call_command("killswitch", "verify-audit")
    call_command("flush", interactive=False, verbosity=0)
    with pytest.raises(CommandError, match="Audit chain broken"):
        call_command("killswitch", "verify-audit")


@pytest.mark.django_db
def test_an_anchor_that_cannot_be_written_never_fails_a_halt(
    ks_files: Any, responder: Any, settings: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    settings.AUDIT_ANCHOR_FILE = str(tmp_path / "a-file" / "anchor")
    failures = anchor._writer.failures
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.killswitch_activate(
            target="production", actor=responder, reason="manual", message="x"
        )
    assert outcome.changed and AuditRecord.objects.filter(action=Action.ACTIVATED).exists()
    assert anchor.flush()
    assert anchor._writer.failures > failures


@pytest.mark.django_db(transaction=True)
def test_verify_reads_one_snapshot_while_records_are_appended() -> None:
    done = threading.Event()
    results: list[list[audit.Finding]] = []

    def verify_until_done() -> None:
        try:
            while not done.is_set():
                results.append(audit.verify()[1])
            results.append(audit.verify()[1])
        finally:
            connection.close()

    before = AuditRecord.objects.count()
    checker = threading.Thread(target=verify_until_done, daemon=True)
    checker.start()
    try:
        race(lambda i: append(15), threads=4)
    finally:
        done.set()
        checker.join(60)
    assert len(results) > 1
    assert [f for findings in results for f in findings] == []
    assert AuditRecord.objects.count() == before + 60


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("::ffff:a00:1", "10.0.0.1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("not an address", None),
    ],
)
def test_addresses_are_hashed_as_postgresql_returns_them(given: str, stored: str | None) -> None:
    [row] = append(1, ip=given)
    assert AuditRecord.objects.get(pk=row.pk).ip_address == stored
    assert audit.verify()[1] == []
