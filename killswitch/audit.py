"""The only code that writes kill-switch audit records, and the code that verifies their chain.

Three things make the chain trustworthy: an HMAC over each record and its predecessor's digest
(keyed outside the database), a database trigger that refuses UPDATE and DELETE, and an anchor
outside the database (killswitch.anchor) that remembers every committed record, so that a TRUNCATE,
a `flush` or a rewritten end of the chain is found too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from console.roles import role_of
from killswitch import anchor
from killswitch.models import Action, AuditHead, AuditRecord

# What PostgreSQL refuses in text and jsonb (NUL), and what UTF-8 cannot encode (lone surrogates).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")

GENESIS = "0" * 64


def _key() -> bytes:
    if not settings.AUDIT_HMAC_KEY:  # empty only with DEBUG off and the variable unset: never sign with it
        raise ImproperlyConfigured("AUDIT_HMAC_KEY is not set; audit records cannot be signed.")
    return settings.AUDIT_HMAC_KEY.encode()


def normalise_ip(value: str | None) -> str | None:
    """An address as PostgreSQL's inet gives it back, so that the digest computed before the insert
    matches the row read later: IPv4-mapped IPv6 as IPv4, IPv6 compressed and lower case, no zone.
    Anything that is not an address is None (the record is never refused for it)."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(str(value).strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _storable(value: Any) -> Any:
    """Strings escaped where PostgreSQL or UTF-8 would refuse them, in any nesting of JSON values."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    if isinstance(value, dict):
        return {_storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


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
        "ip_address": normalise_ip(row.ip_address),
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
        reason=_storable(reason),
        request_id=request_id,
        incident_id=incident_id,
        ip_address=normalise_ip(ip),
        prev_digest=head.digest,
    )
    # Round-trip through JSON first so the digest sees exactly what the database will return.
    row.state_before = json.loads(json.dumps(_storable(row.state_before), default=str))
    row.state_after = json.loads(json.dumps(_storable(row.state_after), default=str))
    row.digest = digest_of(row)
    row.save(force_insert=True)
    head.seq, head.digest = row.seq, row.digest
    head.save(update_fields=["seq", "digest"])
    # Anchored only once committed: the anchor never names a record the database does not hold.
    created = row.created_at.isoformat()
    transaction.on_commit(lambda: anchor.append(row.seq, row.digest, created), robust=True)
    return row


@dataclass(frozen=True)
class Finding:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"record #{self.seq}: {self.problem}" if self.seq else self.problem


@dataclass
class Report:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    anchored: int = 0  # the last record the anchor names
    anchor: str = ""  # where the anchor is, or why there is none


def verify() -> tuple[int, list[Finding]]:
    """Recompute the chain. Returns (records checked, findings); the first finding is the first break."""
    report = verify_report()
    return report.checked, report.findings


def verify_report() -> Report:
    """Recompute the chain and compare it with its anchor.

    1. Read the anchor file first: every record it names was committed before the snapshot below.
    2. Read the records and the chain's head in one REPEATABLE READ snapshot (PostgreSQL), so that
       records appended meanwhile are neither half-seen nor reported as missing.
    3. Each record must follow its predecessor and match its digest; the head must be the last.
    4. Each anchored record must be there with the anchored digest: otherwise the table was emptied
       (TRUNCATE, flush), cut or rewritten.
    """
    anchors = anchor.read()
    report = Report(anchored=anchors.last, anchor=str(anchors.path) if anchors.path else "")
    if anchors.problem:
        report.findings.append(
            Finding(0, f"the audit anchor {anchors.path} cannot be read: {anchors.problem}")
        )
    if connection.in_atomic_block or connection.vendor != "postgresql":
        _verify_rows(report, anchors.records)  # already one transaction (SQLite: always one snapshot)
        return report
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        _verify_rows(report, anchors.records)
    return report


def _verify_rows(report: Report, anchored: dict[int, str]) -> None:
    findings = report.findings
    expected_seq, prev = 1, GENESIS
    found: dict[int, str] = {}
    for row in AuditRecord.objects.order_by("seq").iterator(chunk_size=2000):
        report.checked += 1
        if row.seq != expected_seq:
            findings.append(Finding(expected_seq, f"missing (deleted); the chain jumps to #{row.seq}"))
        elif row.prev_digest != prev:
            findings.append(
                Finding(row.seq, "does not follow the record before it (deleted, swapped or replaced)")
            )
        if not hmac.compare_digest(row.digest, digest_of(row)):
            findings.append(Finding(row.seq, "edited or forged: its digest does not match its content"))
        if row.seq in anchored:
            found[row.seq] = row.digest
        expected_seq, prev = row.seq + 1, row.digest
    head = AuditHead.objects.filter(pk=1).first()
    last = expected_seq - 1
    if head is not None and head.seq > last:
        findings.append(Finding(last + 1, f"missing (deleted): the chain should end at #{head.seq}"))
    elif head is not None and head.seq == last and last and head.digest != prev:
        findings.append(Finding(last, "the chain's recorded end does not match this record"))
    missing = sorted(seq for seq in anchored if seq not in found)
    if missing:
        findings.append(
            Finding(
                missing[0],
                f"missing, with {len(missing) - 1} more up to #{missing[-1]}: the anchor outside the "
                "database names them (the table was emptied by TRUNCATE or flush, or cut)"
                if len(missing) > 1
                else "missing: the anchor outside the database names it (the table was emptied or cut)",
            )
        )
    for seq, digest in sorted(found.items()):
        if not hmac.compare_digest(digest, anchored[seq]):
            findings.append(
                Finding(seq, "replaced: its digest differs from the one anchored outside the database")
            )
    findings.sort(key=lambda f: f.seq)
