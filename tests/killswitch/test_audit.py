from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from killswitch import audit, services
from killswitch.models import Action, AuditRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(ks_files, responder, lead):
    """Real records: role grants (creating the personas), a halt, a resume request, its withdrawal."""
    assert {r.action for r in AuditRecord.objects.all()} == {Action.PERMISSION_GRANTED}
    services.killswitch_activate(target="production", actor=responder, reason="manual", message="drill")
    request = services.killswitch_request_resume(
        target="production", actor=lead, justification="Exchange stable for 20 minutes, fix deployed"
    )
    services.killswitch_reject_resume(request_id=request.pk, actor=lead, note="withdrawn, wrong target")
    return list(AuditRecord.objects.order_by("seq"))[-3:]


def _as_superuser(sql: str, params: list | None = None) -> None:
    """What a database superuser can do despite the trigger: switch triggers off for the session."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


def test_records_chain_and_verify(chain):
    assert [r.action for r in chain] == [Action.ACTIVATED, Action.RESUME_REQUESTED, Action.RESUME_REJECTED]
    assert [r.seq for r in chain] == [3, 4, 5]  # after the two role grants
    assert chain[1].prev_digest == chain[0].digest
    assert AuditRecord.objects.get(seq=1).prev_digest == audit.GENESIS
    assert audit.verify() == (5, [])
    assert chain[0].actor_role == "responder" and chain[0].state_before["condition"] == "trading"
    assert chain[0].state_after["condition"] == "halted"


@pytest.mark.parametrize(
    "sql", ["UPDATE killswitch_auditrecord SET reason = 'nothing'", "DELETE FROM killswitch_auditrecord"]
)
def test_the_database_refuses_update_and_delete(chain, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert AuditRecord.objects.count() == 5


def test_the_orm_cannot_edit_either(chain):
    record = chain[0]
    record.reason = "edited"
    with pytest.raises(DatabaseError), transaction.atomic():
        record.save()


def test_an_edit_by_a_superuser_is_found(chain):
    _as_superuser("UPDATE killswitch_auditrecord SET reason = 'risk_limit: nothing happened' WHERE seq = 4")
    checked, findings = audit.verify()
    assert checked == 5
    assert findings[0].seq == 4 and "edited or forged" in findings[0].problem


def test_a_deleted_record_is_found(chain):
    _as_superuser("DELETE FROM killswitch_auditrecord WHERE seq = 4")
    _, findings = audit.verify()
    assert findings[0].seq == 4 and "missing" in findings[0].problem


def test_a_deleted_last_record_is_found(chain):
    _as_superuser("DELETE FROM killswitch_auditrecord WHERE seq = 5")
    _, findings = audit.verify()
    assert findings[0].seq == 5 and "should end at #5" in findings[0].problem


def test_swapped_records_are_found(chain):
    _as_superuser("UPDATE killswitch_auditrecord SET seq = -1 WHERE seq = 3")
    _as_superuser("UPDATE killswitch_auditrecord SET seq = 3 WHERE seq = 4")
    _as_superuser("UPDATE killswitch_auditrecord SET seq = 4 WHERE seq = -1")
    _, findings = audit.verify()
    assert findings[0].seq == 3


def test_a_forged_record_with_a_plain_sha256_is_found(chain):
    """Someone who can write the table but lacks the key cannot append a convincing record."""
    last = chain[-1]
    forged = AuditRecord(
        seq=6,
        created_at=last.created_at,
        actor_name="mallory",
        action=Action.RESUME_APPROVED,
        target="production",
        prev_digest=last.digest,
        state_before={},
        state_after={},
    )
    forged.digest = hashlib.sha256(audit._payload(forged)).hexdigest()
    forged.save(force_insert=True)
    _, findings = audit.verify()
    assert findings[0].seq == 6 and "forged" in findings[0].problem


def test_digest_is_keyed(chain, settings):
    record = chain[0]
    assert (
        record.digest
        == hmac.new(settings.AUDIT_HMAC_KEY.encode(), audit._payload(record), hashlib.sha256).hexdigest()
    )
    settings.AUDIT_HMAC_KEY = "another key"
    assert audit.verify()[1][0].seq == 1  # every record is now unverifiable, starting at the first


def test_verify_audit_command(chain, capsys):
    call_command("killswitch", "verify-audit")
    assert "Audit chain intact: 5 records" in capsys.readouterr().out
    _as_superuser("UPDATE killswitch_auditrecord SET actor_name = 'someone else' WHERE seq = 3")
    with pytest.raises(CommandError, match="broken at record #3"):
        call_command("killswitch", "verify-audit")


@pytest.mark.django_db(transaction=True)
def test_audit_record_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError):
        audit.record(action=Action.ACTIVATED)


def test_payload_is_canonical_json(chain):
    payload = json.loads(audit._payload(chain[0]))
    assert payload["seq"] == 3 and payload["prev_digest"] == chain[0].prev_digest
