"""Every change of the kill switch. Each service checks the rules (the web UI and the CLI share
them), serialises on the target's row lock, changes the backend, confirms it by reading back, and
writes exactly one audit record in the same transaction. Nothing is recorded as done that did not
happen; a resume whose record cannot be written is undone (trading halted again)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from console.errors import DomainError
from console.services import heartbeat
from incidents import services as incident_services
from incidents.models import OPEN_STATUSES, Incident, IncidentType, Severity
from killswitch import audit
from killswitch.backends import (
    LIMITS,
    BackendError,
    Condition,
    InvalidInput,
    State,
    check_field,
    check_reason,
    clean,
)
from killswitch.models import TIMELINE_KIND, Action, ResumeRequest, ResumeStatus, TargetState
from killswitch.targets import Target, all_targets, get_target

log = logging.getLogger(__name__)
MIN_JUSTIFICATION = 20


class KillSwitchRefused(DomainError):
    """A rule refuses the action; nothing changed. The message says what to do."""


class ReauthRequired(KillSwitchRefused):
    pass


@dataclass(frozen=True)
class Outcome:
    target: str
    changed: bool
    state: State
    message: str


def _require(actor: User, perm: str, what: str) -> None:
    if not actor.is_active or not actor.has_perm(f"killswitch.{perm}"):
        raise PermissionDenied(f"{what} needs the {perm.replace('_', ' ')} permission.")


def _lock(target: Target) -> TargetState:
    TargetState.objects.get_or_create(target=target.name)
    return TargetState.objects.select_for_update().get(target=target.name)


def _remember(row: TargetState, state: State, *, by: str, changed: bool) -> None:
    """Store what was read; each field cleaned and cut to its column (whoever built the State)."""
    now = timezone.now()
    row.condition = state.condition
    row.reason = clean(state.reason, TargetState._meta.get_field("reason").max_length or 40)
    row.message = clean(state.message, LIMITS["message"])
    row.activated_at = clean(state.activated_at, TargetState._meta.get_field("activated_at").max_length or 40)
    row.detail = clean(state.detail, TargetState._meta.get_field("detail").max_length or 300)
    row.observed_at = now
    if state.condition != Condition.UNREACHABLE:
        row.fingerprint = state.fingerprint()
    if changed:
        row.changed_at, row.changed_by = now, by[:150]
    row.save()


def _snapshot(row: TargetState) -> dict[str, Any]:
    return {
        "condition": row.condition,
        "reason": row.reason or None,
        "message": row.message,
        "activated_at": row.activated_at or None,
        "detail": row.detail,
    }


# --- Halt ---------------------------------------------------------------------------------------


def killswitch_activate(
    *,
    target: str,
    actor: User,
    reason: str,
    message: str,
    incident: Incident | None = None,
    ip: str | None = None,
) -> Outcome:
    """Halt trading on `target`. Idempotent: an already halted target is left as it is.

    1. Check permission and input (reason one of CDB's six; no control characters).
    2. Lock the target, read its state; if halted, stop here.
    3. Write through the backend and read back: only a confirmed halt counts.
    4. Record the audit row (and the incident's timeline event) in the same transaction.
    """
    _require(actor, "activate_killswitch", "Halting trading")
    tgt = get_target(target)
    reason = check_reason(reason)
    message = check_field("Message", message, required=False)
    backend = tgt.backend()
    with transaction.atomic():
        row = _lock(tgt)
        before = backend.read()
        if before.halted:
            _remember(row, before, by=row.changed_by, changed=False)
            return Outcome(tgt.name, False, before, f"{tgt.label} is already halted ({before.reason}).")
        after = backend.activate(operator=actor.get_username(), reason=reason, message=message)
        if not after.halted:
            raise BackendError(
                f"{tgt.label}: the halt was not confirmed; the kill switch reads {after.condition} "
                f"{after.detail}".strip()
            )
        _remember(row, after, by=actor.get_username(), changed=True)
        audit.record(
            action=Action.ACTIVATED,
            actor=actor,
            target=tgt.name,
            before=before.as_dict(),
            after=after.as_dict(),
            reason=f"{reason}: {message}" if message else reason,
            incident_id=incident.pk if incident else None,
            ip=ip,
        )
        if incident is not None:
            _name_incident(tgt, incident)
            incident_services.incident_record_event(
                kind=TIMELINE_KIND,
                incident=incident,
                actor=actor,
                message=f"Halted trading on {tgt.label} ({reason})",
                data={"target": tgt.name, "reason": reason},
            )
    return Outcome(tgt.name, True, after, f"Trading halted on {tgt.label}.")


# --- Resume, with four eyes ---------------------------------------------------------------------


def killswitch_request_resume(
    *,
    target: str,
    actor: User,
    justification: str,
    incident: Incident | None = None,
    ip: str | None = None,
) -> ResumeRequest:
    """File a request to resume trading; a different person must approve it before it expires."""
    _require(actor, "request_resume", "Requesting a resume")
    tgt = get_target(target)
    justification = check_field("Justification", justification)
    if len(justification) < MIN_JUSTIFICATION:
        raise InvalidInput(
            f"Justification needs at least {MIN_JUSTIFICATION} characters: say why it is safe."
        )
    resume_requests_expire()
    with transaction.atomic():
        row = _lock(tgt)
        state = tgt.backend().read()
        if state.trading:
            raise KillSwitchRefused(f"Trading is not halted on {tgt.label}; there is nothing to resume.")
        if state.condition == Condition.UNREACHABLE:
            raise BackendError(f"{tgt.label} is unreachable: {state.detail}")
        pending = ResumeRequest.objects.filter(target=tgt.name, status=ResumeStatus.PENDING).first()
        if pending is not None:
            raise KillSwitchRefused(f"Resume request #{pending.pk} is already waiting for approval.")
        now = timezone.now()
        checklist = (
            [{"text": i.text, "done": i.done} for i in incident.checklist_items.filter(kind="pre_recovery")]
            if incident
            else []
        )
        request = ResumeRequest.objects.create(
            target=tgt.name,
            requested_by=actor,
            justification=justification,
            incident=incident,
            pre_recovery=checklist,
            created_at=now,
            expires_at=now + timedelta(minutes=settings.KILLSWITCH_RESUME_MINUTES),
        )
        _remember(row, state, by=row.changed_by, changed=False)
        audit.record(
            action=Action.RESUME_REQUESTED,
            actor=actor,
            target=tgt.name,
            before=state.as_dict(),
            after=state.as_dict(),
            reason=justification,
            request_id=request.pk,
            incident_id=incident.pk if incident else None,
            ip=ip,
        )
    return request


def needs_reauth(actor: User, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return actor.last_login is None or now - actor.last_login > timedelta(
        seconds=settings.KILLSWITCH_REAUTH_SECONDS
    )


def killswitch_approve_resume(
    *, request_id: int, actor: User, reauthenticated: bool = False, ip: str | None = None
) -> Outcome:
    """Approve a pending request and resume trading.

    1. Expire what is due; check permission, four eyes, and a recent login (or a re-entered password).
    2. Lock the target, then the request; it must still be pending.
    3. Deactivate through the backend and read back: only confirmed trading counts.
    4. Mark the request approved and record the audit row. If that fails, halt again (fail closed).
    """
    _require(actor, "approve_resume", "Approving a resume")
    resume_requests_expire()
    request = ResumeRequest.objects.filter(pk=request_id).select_related("requested_by").first()
    if request is None:
        raise KillSwitchRefused(f"There is no resume request #{request_id}.")
    if request.requested_by_id == actor.pk:
        raise KillSwitchRefused("You filed this request; a different person must approve it.")
    if not reauthenticated and needs_reauth(actor):
        raise ReauthRequired("Re-enter your password to approve: your last login is older than 5 minutes.")
    tgt = get_target(request.target)
    backend = tgt.backend()
    resumed = False
    try:
        with transaction.atomic():
            row = _lock(tgt)
            request = (
                ResumeRequest.objects.select_for_update().select_related("requested_by").get(pk=request_id)
            )
            if request.status != ResumeStatus.PENDING:
                raise KillSwitchRefused(
                    f"Resume request #{request.pk} is {request.get_status_display().lower()}."
                )
            before = backend.read()
            if before.trading:
                raise KillSwitchRefused(f"{tgt.label} is already trading; nothing to approve.")
            requester = request.requested_by.get_username()
            after = backend.deactivate(
                operator=actor.get_username(),
                justification=f"{request.justification} (request #{request.pk} by {requester})",
            )
            resumed = after.trading
            if not resumed:
                raise BackendError(
                    f"{tgt.label}: the resume was not confirmed; the kill switch reads {after.condition}."
                )
            request.status, request.decided_by, request.decided_at = (
                ResumeStatus.APPROVED,
                actor,
                timezone.now(),
            )
            request.save(update_fields=["status", "decided_by", "decided_at"])
            _remember(row, after, by=actor.get_username(), changed=True)
            audit.record(
                action=Action.RESUME_APPROVED,
                actor=actor,
                target=tgt.name,
                before=before.as_dict(),
                after=after.as_dict(),
                reason=request.justification,
                request_id=request.pk,
                incident_id=request.incident_id,
                ip=ip,
            )
            if request.incident_id:
                incident_services.incident_record_event(
                    kind=TIMELINE_KIND,
                    incident=request.incident_id,
                    actor=actor,
                    message=f"Resumed trading on {tgt.label} (request #{request.pk} by {requester})",
                    data={"target": tgt.name, "request": request.pk},
                )
    except Exception:
        if resumed:
            _halt_again(backend, tgt)
        raise
    return Outcome(tgt.name, True, after, f"Trading resumed on {tgt.label}.")


def _halt_again(backend: Any, tgt: Target) -> None:
    log.critical("Resume of %s could not be recorded; halting again", tgt.name)
    try:
        backend.activate(
            operator="incident-console",
            reason="system_error",
            message="Resume undone: the console could not record it",
        )
    except Exception:
        log.exception("Could not halt %s again after an unrecorded resume", tgt.name)


def killswitch_reject_resume(
    *, request_id: int, actor: User, note: str = "", ip: str | None = None
) -> ResumeRequest:
    """Reject (an approver) or withdraw (the requester) a pending request."""
    with transaction.atomic():
        request = ResumeRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None:
            raise KillSwitchRefused(f"There is no resume request #{request_id}.")
        if request.requested_by_id != actor.pk:
            _require(actor, "approve_resume", "Rejecting a resume")
        if request.status != ResumeStatus.PENDING:
            raise KillSwitchRefused(
                f"Resume request #{request.pk} is {request.get_status_display().lower()}."
            )
        note = check_field("Note", note, required=False)
        request.status, request.decided_by, request.decided_at, request.note = (
            ResumeStatus.REJECTED,
            actor if request.requested_by_id != actor.pk else None,
            timezone.now(),
            note,
        )
        request.save(update_fields=["status", "decided_by", "decided_at", "note"])
        audit.record(
            action=Action.RESUME_REJECTED,
            actor=actor,
            target=request.target,
            reason=note or "rejected",
            request_id=request.pk,
            incident_id=request.incident_id,
            ip=ip,
        )
    return request


def resume_requests_expire(*, now: datetime | None = None) -> int:
    """Expire pending requests past their deadline, each with its audit record. Idempotent."""
    now = now or timezone.now()
    expired = 0
    for pk in ResumeRequest.objects.filter(status=ResumeStatus.PENDING, expires_at__lte=now).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            request = ResumeRequest.objects.select_for_update().get(pk=pk)
            if request.status != ResumeStatus.PENDING:
                continue
            request.status, request.decided_at = ResumeStatus.EXPIRED, now
            request.save(update_fields=["status", "decided_at"])
            audit.record(
                action=Action.RESUME_EXPIRED,
                target=request.target,
                request_id=request.pk,
                reason=f"Not approved within {settings.KILLSWITCH_RESUME_MINUTES} minutes",
                incident_id=request.incident_id,
            )
            expired += 1
    return expired


# --- Reconcile: what changed without the console ------------------------------------------------

RECONCILE_JOB = "kill switch"  # the heartbeat of a run that could not even list its targets


def killswitch_reconcile(*, target: str) -> State:
    """Read the target, then record whatever changed without the console.

    1. Note the last recorded observation, then read the backend without any lock: a slow read
       (bounded by its timeout) never blocks a halt waiting for the target's row.
    2. Lock the target's row. If another observation was recorded meanwhile (a console action, or
       another reconcile), this read may be older than that one: record nothing, the next run reads
       again; a stale read is never recorded as an external change.
    3. Otherwise compare and record (`_observe`).
    """
    tgt = get_target(target)
    seen = TargetState.objects.filter(target=tgt.name).values_list("observed_at", flat=True).first()
    state = tgt.backend().read()
    with transaction.atomic():
        row = _lock(tgt)
        if row.observed_at != seen:
            log.info("Reconcile of %s skipped: the console observed it during the read", tgt.name)
            return state
        _observe(tgt, row, state)
    return state


def killswitch_reconcile_all() -> dict[str, str]:
    """Reconcile every target, each on its own; a target that fails does not hide the others.

    Each target's run is a heartbeat (`kill switch <name>`), failing with the error when anything
    goes wrong (a database error, a backend or configuration error); a run that dies without a word
    shows as overdue in the top bar (see console.selectors). A heartbeat that cannot be written is
    retried once on a fresh connection, then the task fails loudly.
    """
    try:
        names = list(all_targets())
    except Exception as exc:
        log.exception("Kill-switch targets cannot be read")
        _beat(RECONCILE_JOB, error=clean(f"{exc.__class__.__name__}: {exc}", 300))
        raise
    result: dict[str, str] = {}
    unwritten: list[Exception] = []
    for name in names:
        job = f"kill switch {name}"
        try:
            result[name] = killswitch_reconcile(target=name).condition
            error = ""
        except Exception as exc:
            log.exception("Reconcile of kill-switch target %s failed", name)
            error = clean(f"{exc.__class__.__name__}: {exc}", 300)
            result[name] = "error"
        try:
            _beat(job, error=error)
        except Exception as exc:
            unwritten.append(exc)
    if unwritten:
        raise unwritten[0]
    return result


def _beat(job: str, *, error: str = "") -> None:
    """A heartbeat, on a fresh connection if the last error left the current one unusable (only
    outside a transaction: a caller's transaction is never closed under it)."""
    for attempt in (1, 2):
        try:
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
            heartbeat(job, error=error)
            return
        except DatabaseError:
            if attempt == 2 or connection.in_atomic_block:
                log.exception("Heartbeat %s could not be written", job)
                raise
            connection.close()


def _observe(tgt: Target, row: TargetState, state: State) -> Incident | None:
    """Compare what the backend says now with what the console last recorded, under the target's row
    lock. A difference the console did not make is recorded as an external change (one audit row).
    An external halt, a kill switch that cannot be evaluated, and an external resume (trading again
    after a halt without the console's four eyes) each open or join the target's SEV-1 incident.

    Reconcile does only this; every action does it first, so that no change made outside the console
    goes unrecorded because an action overwrote it. Returns the incident the change joined, if any.
    """
    if state.condition == Condition.UNREACHABLE or state.fingerprint() == row.fingerprint:
        _remember(row, state, by=row.changed_by, changed=False)
        return None
    before = _snapshot(row)
    # The condition last evaluated (an unreachable read keeps the fingerprint of the one before).
    last = row.fingerprint.partition("|")[0]
    _remember(row, state, by="external", changed=True)
    incident = None
    resumed = state.trading and last not in ("", Condition.TRADING)
    if state.condition in (Condition.HALTED, Condition.UNEVALUABLE) or resumed:
        incident = _open_or_attach_incident(tgt, state)
    audit.record(
        action=Action.EXTERNAL_CHANGE,
        actor=None,
        target=tgt.name,
        before=before,
        after=state.as_dict(),
        reason=state.summary,
        incident_id=incident.pk if incident else None,
    )
    return incident


def _group_key(tgt: Target) -> str:
    # The alert rule on risk_kill_switch_active groups under the same key (detection/data).
    return f"killswitch:{tgt.name}"


def _name_incident(tgt: Target, incident: Incident) -> None:
    """Alerts about this target's kill switch (the `risk_kill_switch_active` rule) join this incident."""
    from detection.models import SignalGroup

    SignalGroup.objects.update_or_create(key=_group_key(tgt), defaults={"incident": incident})


def _lock_group(tgt: Target) -> Any:
    """The target's signal group row, created if missing and locked: alert routing locks the same
    row before it opens or joins an incident, so the two never open one each."""
    from detection.models import SignalGroup

    key = _group_key(tgt)
    SignalGroup.objects.bulk_create([SignalGroup(key=key)], ignore_conflicts=True)
    return SignalGroup.objects.select_for_update(of=("self",)).select_related("incident").get(key=key)


_WHAT = {
    Condition.HALTED: "halted trading",
    Condition.UNEVALUABLE: "cannot be evaluated",
    Condition.TRADING: "deactivated outside the console",
}


def _open_or_attach_incident(tgt: Target, state: State) -> Incident:
    """Join the open incident of this target's kill switch, or open its SEV-1.

    1. Lock the target's signal group (`killswitch:<target>`), the row alert routing locks too.
    2. Its incident, if open and of the same kind (a drill target's changes never join a real
       incident, and the reverse), is joined, and raised to SEV-1 if it is less severe.
    3. Otherwise declare a SEV-1 incident (a drill incident for a drill target) and name it in the
       group, so that the alert about the same halt joins it.
    4. Write the change on its timeline.
    """
    group = _lock_group(tgt)
    what = _WHAT[state.condition]
    drill = not tgt.production
    incident = group.incident
    if incident is not None and (incident.status not in OPEN_STATUSES or incident.is_drill != drill):
        incident = None
    if incident is None:
        kind = IncidentType.objects.filter(slug="kill-switch-activated").first() or IncidentType.objects.get(
            slug="other"
        )
        if state.trading:
            title = f"Kill switch deactivated outside the console on {tgt.label}"
        else:
            title = f"Kill switch {what} on {tgt.label} ({state.summary if state.halted else state.detail})"
        incident = incident_services.incident_declare(
            actor=None,
            title=clean(title, 200),
            incident_type=kind,
            severity=Severity.SEV1,
            affected_components=["cdb_risk", "cdb_execution"],
            description=f"Detected by the console's reconcile. {state.summary}".strip(),
            is_drill=drill,
        )
        group.incident = incident
        group.save(update_fields=["incident"])
    elif incident.severity > Severity.SEV1:
        incident_services.incident_change_severity(
            incident=incident,
            actor=None,
            severity=Severity.SEV1,
            reason=f"Kill switch {what} on {tgt.label} outside the console",
        )
    incident_services.incident_record_event(
        kind=TIMELINE_KIND,
        incident=incident,
        actor=None,
        message=f"Kill switch {what} on {tgt.label} outside the console: {state.summary}",
        data={"target": tgt.name, **state.as_dict()},
    )
    return incident
