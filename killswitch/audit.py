"""The only code that writes kill-switch audit records, and the code that verifies their chain."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from console.roles import role_of
from killswitch.models import Action, AuditHead, AuditRecord

GENESIS = "0" * 64


def _key() -> bytes:
    if not settings.AUDIT_HMAC_KEY:  # empty only with DEBUG off and the variable unset: never sign with it
        raise ImproperlyConfigured("AUDIT_HMAC_KEY is not set; audit records cannot be signed.")
    return settings.AUDIT_HMAC_KEY.encode()


def _payload(row: AuditRecord) -> bytes:
    fields = {
        "seq": row.seq,
        "created_at": row.created_at.isoformat(),
        "actor_id": row.actor_id,
        "actor_name": row.actor_name,
        "actor_role": row.actor_role,
        "action": row.action,
        "target": row.target,
        "state_before": row.state_before,
        "state_after": row.state_after,
        "reason": row.reason,
        "request_id": row.request_id,
        "incident_id": row.incident_id,
        "ip_address": row.ip_address,
        "prev_digest": row.prev_digest,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def digest_of(row: AuditRecord) -> str:
    return hmac.new(_key(), _payload(row), hashlib.sha256).hexdigest()


def record(
    *,
    action: Action,
    actor: Any = None,
    target: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
    request_id: int | None = None,
    incident_id: int | None = None,
    ip: str | None = None,
) -> AuditRecord:
    """Append one record to the chain. Must run inside the transaction of the change it records."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.record must run inside the change's transaction")
    head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
    user = actor if getattr(actor, "pk", None) else None
    row = AuditRecord(
        seq=head.seq + 1,
        created_at=timezone.now(),
        actor=user,
        actor_name=user.get_username() if user else (str(actor) if actor else "system"),
        actor_role=role_of(user) if user else "",
        action=action,
        target=target,
        state_before=before or {},
        state_after=after or {},
        reason=reason,
        request_id=request_id,
        incident_id=incident_id,
        ip_address=ip or None,
        prev_digest=head.digest,
    )
    # Round-trip through JSON first so the digest sees exactly what the database will return.
    row.state_before = json.loads(json.dumps(row.state_before, default=str))
    row.state_after = json.loads(json.dumps(row.state_after, default=str))
    row.digest = digest_of(row)
    row.save(force_insert=True)
    head.seq, head.digest = row.seq, row.digest
    head.save(update_fields=["seq", "digest"])
    return row


@dataclass(frozen=True)
class Finding:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"record #{self.seq}: {self.problem}"


def verify() -> tuple[int, list[Finding]]:
    """Recompute the chain. Returns (records checked, findings); the first finding is the first break."""
    findings: list[Finding] = []
    expected_seq, prev = 1, GENESIS
    checked = 0
    for row in AuditRecord.objects.order_by("seq").iterator(chunk_size=2000):
        checked += 1
        if row.seq != expected_seq:
            findings.append(Finding(expected_seq, f"missing (deleted); the chain jumps to #{row.seq}"))
        elif row.prev_digest != prev:
            findings.append(
                Finding(row.seq, "does not follow the record before it (deleted, swapped or replaced)")
            )
        if not hmac.compare_digest(row.digest, digest_of(row)):
            findings.append(Finding(row.seq, "edited or forged: its digest does not match its content"))
        expected_seq, prev = row.seq + 1, row.digest
    head = AuditHead.objects.filter(pk=1).first()
    last = expected_seq - 1
    if head is not None and head.seq > last:
        findings.append(Finding(last + 1, f"missing (deleted): the chain should end at #{head.seq}"))
    elif head is not None and head.seq == last and last and head.digest != prev:
        findings.append(Finding(last, "the chain's recorded end does not match this record"))
    return checked, findings
