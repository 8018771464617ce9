"""Every change of the kill switch. Each service checks the rules (the web UI and the CLI share
them), serialises on the target's row lock, first records whatever changed outside the console since
it last looked (`_observe`), changes the backend, confirms it by reading back, and writes exactly one
audit record in the same transaction. Nothing is recorded as done that did not happen, and no change
goes unrecorded: a resume whose record cannot be written is undone (trading halted again); a halt
whose record cannot be written stands, and is kept in the spool (killswitch/spool.py) until the
database accepts it. Halting works without the database at all (`killswitch_activate_offline`)."""

from __future__ import annotations

import logging
import re
import uuid
from contextlib import ExitStack
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
from killswitch import audit, spool
from killswitch.backends import (
    LIMITS,
    MAX_FIELD,
    Backend,
    BackendError,
    Condition,
    InvalidInput,
    State,
    check_field,
    check_reason,
    clean,
)
from killswitch.models import (
    TIMELINE_KIND,
    Action,
    ResumeRequest,
    ResumeStatus,
    SpooledChange,
    TargetState,
)
from killswitch.targets import Target, all_targets, get_target

log = logging.getLogger(__name__)
MIN_JUSTIFICATION = 20
# The operator name the console writes when it acts on its own (halting again after a failed resume).
CONSOLE = "incident-console"
SPOOL_JOB = "kill switch spool"


class KillSwitchRefused(DomainError):
    """A rule refuses the action; nothing changed. The message says what to do."""


class ReauthRequired(KillSwitchRefused):
    pass


class ResumeFailed(DomainError):
    """The backend was told to resume, then something failed: trading was halted again (or could
    not be, which the message says), and the failure is recorded."""


@dataclass(frozen=True)
class Outcome:
    target: str
    changed: bool
    state: State
    message: str
    # False when the change happened but its audit record waits in the spool for the database.
    recorded: bool = True


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


def halt_of(state: State) -> dict[str, Any]:
    """What identifies a halt: its reason and activation time (for a state that cannot be evaluated,
    why). A resume request belongs to the halt it was filed for; any other halt makes it void."""
    if state.halted:
        return {"condition": state.condition, "reason": state.reason, "activated_at": state.activated_at}
    return {"condition": state.condition, "detail": state.detail}


def _check_incident(tgt: Target, incident: Incident | None) -> None:
    """A drill never acts on production, and a real incident acts on production only."""
    if incident is None or tgt.serves(is_drill=incident.is_drill):
        return
    if incident.is_drill:
        raise KillSwitchRefused(
            f"{incident.reference} is a drill: a drill never acts on the production target "
            f"({tgt.label}). Use the drill target."
        )
    raise KillSwitchRefused(
        f"{incident.reference} is a real incident: it acts on the production target, not on {tgt.label}."
    )


def error_text(exc: BaseException, limit: int = 200) -> str:
    """An error as one line of text CDB's file can hold (no control characters), for records."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    if not isinstance(exc, BackendError | DomainError):
        text = f"{exc.__class__.__name__}: {text}"
    return re.sub(r"[\x00-\x1f\x7f\u0085\u2028\u2029]", " ", text)[:limit]


def _operator(name: str, origin: str) -> str:
    return f"{name} via {origin}" if origin else name


def _unrecorded(tgt: Target, *, kept: bool) -> str:
    if kept:
        return (
            f"Trading is halted on {tgt.label}; the audit record could not be written and will be "
            "recorded when the database accepts writes."
        )
    return (
        f"Trading is halted on {tgt.label}; the audit record could not be written, nor kept for later: "
        "reconcile will record the halt as a change made outside the console once the database "
        "accepts writes."
    )


def _spool(
    *,
    action: str,
    tgt: Target,
    actor: str,
    actor_id: int | None,
    before: State | None,
    after: State | None,
    reason: str,
    why: str,
    incident_id: int | None = None,
    request_id: int | None = None,
    ip: str | None = None,
    lock: bool = True,
) -> bool:
    """Keep a change the database could not record. False (and a CRITICAL log) if even that fails."""
    entry = spool.new_entry(
        action=action,
        target=tgt.name,
        actor=actor,
        actor_id=actor_id,
        before=before.as_dict() if before else None,
        after=after.as_dict() if after else None,
        reason=reason,
        why=why,
        incident_id=incident_id,
        request_id=request_id,
        ip=ip,
    )
    try:
        spool.append(entry, lock=lock)
    except OSError:
        log.critical(
            "Kill-switch change on %s could not be spooled either: %s", tgt.name, entry, exc_info=True
        )
        return False
    log.critical(
        "Kill-switch change on %s could not be recorded (%s); spooled as %s", tgt.name, why, entry["id"]
    )
    return True


# --- Halt ---------------------------------------------------------------------------------------


def _confirmed_halt(backend: Backend, *, operator: str, reason: str, message: str) -> State:
    """Write the halt and read it back. A write that failed after its rename (the directory sync) may
    still have landed: only the read decides."""
    try:
        after = backend.activate(operator=operator, reason=reason, message=message)
    except BackendError as exc:
        after = backend.read()
        if not after.halted:
            raise
        log.warning("Halt of %s confirmed by reading back despite: %s", backend.describe(), exc)
    if not after.halted:
        raise BackendError(
            f"The halt was not confirmed; the kill switch reads {after.condition} {after.detail}".strip()
        )
    return after


def killswitch_activate(
    *,
    target: str,
    actor: User,
    reason: str,
    message: str,
    incident: Incident | None = None,
    ip: str | None = None,
    origin: str = "",
) -> Outcome:
    """Halt trading on `target`. Idempotent: an already halted target is left as it is.

    1. Check permission and input (reason one of CDB's six; no control characters), and that the
       incident matches the target (a drill acts on a drill target only).
    2. Record what the spool kept; lock the target, read it, and record any change made outside the
       console since the last observation (`_observe`). If halted, stop here.
    3. Write through the backend and read back: only a confirmed halt counts.
    4. Record the audit row and the incident's timeline event in the same transaction; pending resume
       requests were for an earlier halt and become void.
    5. If the database fails before the write, halt without it (`killswitch_activate_offline`); if it
       fails after, the halt stands, is spooled, and the outcome says its record is pending.
    `origin` (e.g. the CLI's operating-system user and host) goes into CDB's operator and the audit.
    """
    _require(actor, "activate_killswitch", "Halting trading")
    tgt = get_target(target)
    reason = check_reason(reason)
    message = check_field("Message", message, required=False)
    _check_incident(tgt, incident)
    name = actor.get_username()
    audit_reason = f"{reason}: {message}" if message else reason
    if origin:
        audit_reason += f" (via {origin})"
    spooled_changes_record()
    backend = tgt.backend()
    found: State | None = None
    after: State | None = None
    refusal: BackendError | None = None
    try:
        with transaction.atomic():
            row = _lock(tgt)
            found = backend.read()
            _observe(tgt, row, found)
            if found.halted:
                return Outcome(tgt.name, False, found, f"{tgt.label} is already halted ({found.reason}).")
            try:
                after = _confirmed_halt(
                    backend, operator=_operator(name, origin), reason=reason, message=message
                )
            except BackendError as exc:
                refusal = exc  # nothing halted; what _observe recorded still commits
            else:
                _remember(row, after, by=name, changed=True)
                audit.record(
                    action=Action.ACTIVATED,
                    actor=actor,
                    target=tgt.name,
                    before=found.as_dict(),
                    after=after.as_dict(),
                    reason=audit_reason,
                    incident_id=incident.pk if incident else None,
                    ip=ip,
                )
                _void_pending(tgt, why=f"a new halt ({reason} at {after.activated_at}) replaced its halt")
                if incident is not None:
                    _name_incident(tgt, incident)
                    incident_services.incident_record_event(
                        kind=TIMELINE_KIND,
                        incident=incident,
                        actor=actor,
                        message=f"Halted trading on {tgt.label} ({reason})",
                        data={"target": tgt.name, "reason": reason, "event": "halted"},
                    )
    except Exception as exc:
        if after is None:
            if not isinstance(exc, DatabaseError):
                raise
            # Before the write: the database must not stand between a person and the halt.
            log.error("Halting %s without the database: %s", tgt.name, error_text(exc))
            return killswitch_activate_offline(
                target=tgt.name,
                actor_name=name,
                actor_id=actor.pk,
                reason=reason,
                message=message,
                incident_id=incident.pk if incident else None,
                ip=ip,
                origin=origin,
                why=f"database unavailable ({error_text(exc)})",
            )
        # After the write: the halt stands; its record waits in the spool.
        kept = _spool(
            action=Action.ACTIVATED,
            tgt=tgt,
            actor=name,
            actor_id=actor.pk,
            before=found,
            after=after,
            reason=audit_reason,
            why=f"audit record failed ({error_text(exc)})",
            incident_id=incident.pk if incident else None,
            ip=ip,
        )
        return Outcome(tgt.name, True, after, _unrecorded(tgt, kept=kept), recorded=False)
    if refusal is not None or after is None:
        raise refusal or BackendError(f"{tgt.label}: the halt was not confirmed.")
    return Outcome(tgt.name, True, after, f"Trading halted on {tgt.label}.")


def killswitch_activate_offline(
    *,
    target: str,
    actor_name: str,
    actor_id: int | None = None,
    reason: str,
    message: str,
    incident_id: int | None = None,
    ip: str | None = None,
    origin: str = "",
    why: str = "database unavailable",
) -> Outcome:
    """Halt trading without the database: the playbook's default action never waits for PostgreSQL.
    The caller vouches for the person (the CLI on the console's host, or the web's signed "may halt"
    cookie, see killswitch/offline.py); nothing here reads the database.

    1. Check the input.
    2. Under the spool's lock (one such halt at a time on this host), read the target; if halted, stop.
    3. Write through the backend and read back: only a confirmed halt counts.
    4. Append the halt to the spool (fsynced) before answering; `spooled_changes_record` writes its
       audit record, with the real actor, once the database accepts writes.
    """
    tgt = get_target(target)
    reason = check_reason(reason)
    message = check_field("Message", message, required=False)
    actor_name = check_field("Operator", actor_name, limit=150)
    audit_reason = f"{reason}: {message}" if message else reason
    if origin:
        audit_reason += f" (via {origin})"
    backend = tgt.backend()
    with ExitStack() as stack:
        try:
            stack.enter_context(spool.locked())
            locked = True
        except OSError:
            log.critical(
                "Kill-switch spool %s cannot be locked; halting without it", spool.path(), exc_info=True
            )
            locked = False
        found = backend.read()
        if found.halted:
            return Outcome(tgt.name, False, found, f"{tgt.label} is already halted ({found.reason}).")
        after = _confirmed_halt(
            backend, operator=_operator(actor_name, origin), reason=reason, message=message
        )
        kept = locked and _spool(
            action=Action.ACTIVATED,
            tgt=tgt,
            actor=actor_name,
            actor_id=actor_id,
            before=found,
            after=after,
            reason=audit_reason,
            why=why,
            incident_id=incident_id,
            ip=ip,
            lock=False,
        )
    return Outcome(tgt.name, True, after, _unrecorded(tgt, kept=kept), recorded=False)


# --- Resume, with four eyes ---------------------------------------------------------------------


def _void(request: ResumeRequest, *, why: str) -> None:
    """The request no longer applies (another halt, or its requester may no longer request)."""
    request.status, request.decided_at, request.note = ResumeStatus.VOID, timezone.now(), why
    request.save(update_fields=["status", "decided_at", "note"])
    audit.record(
        action=Action.RESUME_VOIDED,
        target=request.target,
        reason=f"Void: {why}",
        request_id=request.pk,
        incident_id=request.incident_id,
    )


def _void_pending(tgt: Target, *, why: str) -> None:
    for request in ResumeRequest.objects.select_for_update().filter(
        target=tgt.name, status=ResumeStatus.PENDING
    ):
        _void(request, why=why)


def killswitch_request_resume(
    *,
    target: str,
    actor: User,
    justification: str,
    incident: Incident | None = None,
    ip: str | None = None,
) -> ResumeRequest:
    """File a request to resume trading; a different person must approve it before it expires.

    1. Check permission and input, and that the incident matches the target.
    2. Lock the target, read it, and record any change made outside the console (`_observe`).
    3. The target must be halted (or unevaluable) and reachable; a request pending for this halt
       refuses a second one, and one pending for an earlier halt becomes void.
    4. Create the request for this halt and record the audit row. A refusal commits what step 2
       recorded, then raises.
    """
    _require(actor, "request_resume", "Requesting a resume")
    tgt = get_target(target)
    justification = check_field("Justification", justification)
    if len(justification) < MIN_JUSTIFICATION:
        raise InvalidInput(
            f"Justification needs at least {MIN_JUSTIFICATION} characters: say why it is safe."
        )
    _check_incident(tgt, incident)
    resume_requests_expire()
    spooled_changes_record()
    refusal: Exception | None = None
    with transaction.atomic():
        row = _lock(tgt)
        state = tgt.backend().read()
        _observe(tgt, row, state)
        if state.trading:
            refusal = KillSwitchRefused(f"Trading is not halted on {tgt.label}; there is nothing to resume.")
        elif state.condition == Condition.UNREACHABLE:
            refusal = BackendError(f"{tgt.label} is unreachable: {state.detail}")
        else:
            for pending in ResumeRequest.objects.select_for_update().filter(
                target=tgt.name, status=ResumeStatus.PENDING
            ):
                if pending.halt == halt_of(state):
                    refusal = KillSwitchRefused(
                        f"Resume request #{pending.pk} is already waiting for approval."
                    )
                else:
                    _void(pending, why="it was filed for an earlier halt")
        if refusal is None:
            now = timezone.now()
            checklist = _pre_recovery_snapshot(incident) if incident else []
            request = ResumeRequest.objects.create(
                target=tgt.name,
                requested_by=actor,
                justification=justification,
                incident=incident,
                pre_recovery=checklist,
                halt=halt_of(state),
                created_at=now,
                expires_at=now + timedelta(minutes=settings.KILLSWITCH_RESUME_MINUTES),
            )
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
    if refusal is not None:
        raise refusal
    return request


def _approval_refusal(tgt: Target, request: ResumeRequest, actor: User, found: State) -> Exception | None:
    """What forbids approving now, checked under the locks; a request that can never be approved
    again is expired or voided here, with its record."""
    if request.status != ResumeStatus.PENDING:
        return KillSwitchRefused(f"Resume request #{request.pk} is {request.get_status_display().lower()}.")
    now = timezone.now()
    if request.expires_at <= now:
        _expire(request, now)
        return KillSwitchRefused(f"Resume request #{request.pk} expired; file a new one.")
    # Fresh rows: permissions and activeness as they are now, not as cached on the objects.
    requester = User.objects.get(pk=request.requested_by_id)
    if not requester.is_active or not requester.has_perm("killswitch.request_resume"):
        _void(request, why=f"{requester.get_username()} no longer may request a resume")
        return KillSwitchRefused(
            f"Resume request #{request.pk} is void: {requester.get_username()} no longer may request a "
            "resume (account inactive or permission removed)."
        )
    approver = User.objects.get(pk=actor.pk)
    if not approver.is_active or not approver.has_perm("killswitch.approve_resume"):
        return KillSwitchRefused("You no longer hold the permission to approve a resume.")
    if found.condition == Condition.UNREACHABLE:
        return BackendError(f"{tgt.label} is unreachable: {found.detail}")
    if found.trading:
        _void(request, why="trading resumed without it")
        return KillSwitchRefused(
            f"{tgt.label} is already trading; resume request #{request.pk} is void, nothing to approve."
        )
    if halt_of(found) != request.halt:
        _void(
            request,
            why=f"a new halt ({found.reason or found.detail} at {found.activated_at}) replaced its halt",
        )
        return KillSwitchRefused(
            f"Resume request #{request.pk} is void: a new halt ({found.reason or found.detail}) replaced the "
            "one it was filed for. File a new request for this halt."
        )
    return None


def killswitch_approve_resume(
    *, request_id: int, actor: User, reauthenticated: bool = False, ip: str | None = None
) -> Outcome:
    """Approve a pending request and resume trading.

    1. Expire what is due; check permission, four eyes, and that the caller re-authenticated the
       approver (`reauthenticated`: a password entered in this session, or at the CLI's prompt).
    2. Lock the target, then the request; record any change made outside the console (`_observe`).
    3. Re-check under the locks (`_approval_refusal`): pending, not expired, requester still active
       and allowed, approver still allowed, and the target still holds the halt the request was filed
       for. A refusal commits what it recorded (an expiry, a void, an external change), then raises.
    4. Deactivate through the backend and read back: only confirmed trading counts. Mark the request
       approved, record the audit row and the incident's timeline row.
    5. If anything fails once the backend was told to resume (the write, the confirming read, the
       audit or timeline insert, the commit), halt again and record the failure on its own
       (`_resume_failed`): the kill switch never fails open.
    """
    _require(actor, "approve_resume", "Approving a resume")
    resume_requests_expire()
    request = ResumeRequest.objects.filter(pk=request_id).select_related("requested_by").first()
    if request is None:
        raise KillSwitchRefused(f"There is no resume request #{request_id}.")
    if request.requested_by_id == actor.pk:
        raise KillSwitchRefused("You filed this request; a different person must approve it.")
    if not reauthenticated:
        # The caller proves it (console.reauth for the web, the password for the CLI): a session's
        # password entered within KILLSWITCH_REAUTH_SECONDS, and the second factor where enrolled.
        raise ReauthRequired("Re-enter your password to approve.")
    tgt = get_target(request.target)
    spooled_changes_record()
    backend = tgt.backend()
    found: State | None = None
    after: State | None = None
    attempted = False
    refusal: Exception | None = None
    try:
        with transaction.atomic():
            row = _lock(tgt)
            request = (
                ResumeRequest.objects.select_for_update(of=("self",))
                .select_related("requested_by")
                .get(pk=request_id)
            )
            found = backend.read()
            _observe(tgt, row, found)
            refusal = _approval_refusal(tgt, request, actor, found)
            if refusal is None:
                requester = request.requested_by.get_username()
                attempted = True
                after = backend.deactivate(
                    operator=actor.get_username(),
                    justification=f"{request.justification} (request #{request.pk} by {requester})",
                )
                if not after.trading:
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
                    before=found.as_dict(),
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
                        data={"target": tgt.name, "request": request.pk, "event": "resumed"},
                    )
                    _monitor_after_resume(request.incident_id, actor)
    except BaseException as exc:
        if not attempted:
            raise
        # Also on an interrupt (a worker killed by its timeout, Ctrl-C at the CLI): halt again first.
        failure = _resume_failed(
            tgt, backend, request_id=request_id, actor=actor, found=found, error=exc, ip=ip
        )
        if isinstance(exc, Exception):
            raise failure from exc
        raise
    if refusal is not None or after is None:
        raise refusal or KillSwitchRefused("Nothing was approved.")
    return Outcome(tgt.name, True, after, f"Trading resumed on {tgt.label}.")


def _pre_recovery_snapshot(incident: Incident) -> list[dict[str, Any]]:
    """The incident's pre-recovery checklist as it stands, attached to the request for its approver:
    each item ticked or not, and for the items the console checks itself, the verdict now."""
    from incidents.selectors import checklists_for

    return [
        {"text": i.text, "done": i.satisfied}
        | ({"checked": True, "detail": i.fact.detail if i.fact else ""} if i.fact_name else {})
        for i in checklists_for(incident)["pre_recovery"]
    ]


def _monitor_after_resume(incident_id: int, actor: User) -> None:
    """Trading resumed for this incident (playbook 7.4): it enters monitoring for its severity's window.
    A move the lifecycle does not make (triage, resolved, closed) leaves the incident as it is; the
    resume stands either way."""
    from incidents.lifecycle import ActionRefused
    from incidents.models import Status

    try:
        incident_services.incident_change_status(
            incident=incident_id, actor=actor, to_status=Status.MONITORING
        )
    except ActionRefused:
        log.info("Incident %s stays as it is after the resume", incident_id)


def _halt_again(tgt: Target, backend: Backend, why: str) -> State | None:
    """Undo a resume: halt with reason system_error. Returns the state read afterwards (None if even
    that failed); every failure here is logged at CRITICAL."""
    try:
        return _confirmed_halt(
            backend, operator=CONSOLE, reason="system_error", message=f"Resume undone: {why}"[:MAX_FIELD]
        )
    except Exception:
        log.critical("Could not halt %s again after a failed resume", tgt.name, exc_info=True)
    try:
        return backend.read()
    except Exception:
        log.critical("Could not read %s after trying to halt it again", tgt.name, exc_info=True)
        return None


def _resume_failed(
    tgt: Target,
    backend: Backend,
    *,
    request_id: int,
    actor: User,
    found: State | None,
    error: BaseException,
    ip: str | None,
) -> ResumeFailed:
    """After a failed resume: halt again, then record the failure in a transaction of its own (the
    original one rolled back): the request fails, the audit says what happened, the target's state
    is remembered as the console's (reconcile does not take the second halt for an external one).
    If the database refuses that too, the record goes to the spool."""
    why = error_text(error)
    log.critical(
        "Resume of %s (request #%s by %s) failed: %s; halting again", tgt.name, request_id, actor, why
    )
    again = _halt_again(tgt, backend, why)
    halted = again is not None and again.halted
    result = "trading halted again" if halted else "trading could NOT be halted again"
    reason = f"Resume failed ({why}); {result}."
    try:
        with transaction.atomic():
            row = _lock(tgt)
            if found is not None:
                _observe(tgt, row, found)
            request = ResumeRequest.objects.select_for_update().get(pk=request_id)
            if request.status == ResumeStatus.PENDING:
                request.status, request.decided_by, request.decided_at, request.note = (
                    ResumeStatus.FAILED,
                    actor,
                    timezone.now(),
                    reason,
                )
                request.save(update_fields=["status", "decided_by", "decided_at", "note"])
            if again is not None:
                _remember(row, again, by=CONSOLE, changed=True)
            audit.record(
                action=Action.RESUME_FAILED,
                actor=actor,
                target=tgt.name,
                before=found.as_dict() if found else {},
                after=again.as_dict() if again else {},
                reason=reason,
                request_id=request_id,
                incident_id=request.incident_id,
                ip=ip,
            )
            if request.incident_id:
                incident_services.incident_record_event(
                    kind=TIMELINE_KIND,
                    incident=request.incident_id,
                    actor=actor,
                    message=f"Resume of {tgt.label} failed; {result} ({why})",
                    data={"target": tgt.name, "request": request_id, "event": "halted"},
                )
    except Exception:
        log.critical("The failed resume of %s could not be recorded either", tgt.name, exc_info=True)
        _spool(
            action=Action.RESUME_FAILED,
            tgt=tgt,
            actor=actor.get_username(),
            actor_id=actor.pk,
            before=found,
            after=again,
            reason=reason,
            why="audit record failed",
            request_id=request_id,
            ip=ip,
        )
    if halted:
        return ResumeFailed(f"The resume of {tgt.label} failed ({why}); trading was halted again.")
    return ResumeFailed(
        f"The resume of {tgt.label} failed ({why}) and trading could NOT be halted again: "
        "halt it now (kill-switch page or `manage.py killswitch activate`)."
    )


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


def _expire(request: ResumeRequest, now: datetime) -> None:
    request.status, request.decided_at = ResumeStatus.EXPIRED, now
    request.save(update_fields=["status", "decided_at"])
    audit.record(
        action=Action.RESUME_EXPIRED,
        target=request.target,
        request_id=request.pk,
        reason=f"Not approved within {settings.KILLSWITCH_RESUME_MINUTES} minutes",
        incident_id=request.incident_id,
    )


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
            _expire(request, now)
            expired += 1
    return expired


# --- Changes the spool kept ---------------------------------------------------------------------


def spooled_changes_record() -> int:
    """Record the changes the spool kept (made while the database could not record them), oldest
    first, each in a transaction of its own (`_record_spooled`), then drop them from the spool.
    Never raises: an entry the database still refuses stops the run, is logged and marks the
    `kill switch spool` heartbeat failing; it and those after it wait for the next run. Returns how
    many were recorded. Cheap when the spool is empty (one stat)."""
    try:
        entries = spool.pending()
    except OSError as exc:
        log.error("Kill-switch spool %s cannot be read: %s", spool.path(), exc)
        return 0
    if not entries:
        return 0
    done: set[str] = set()
    recorded = 0
    try:
        for entry in entries:
            recorded += _record_spooled(entry)
            done.add(entry["id"])
    except Exception as exc:
        log.exception("Recording the kill-switch spool stopped at entry %s", entry.get("id"))
        _heartbeat_quietly(error=f"entry {entry.get('id')}: {error_text(exc)}")
    else:
        _heartbeat_quietly()
    finally:
        try:
            spool.remove(done)
        except OSError:
            log.exception(
                "Recorded kill-switch spool entries could not be removed (they are not recorded twice)"
            )
    return recorded


def _heartbeat_quietly(error: str = "") -> None:
    try:
        heartbeat(SPOOL_JOB, error=error)
    except DatabaseError:
        log.warning("The kill switch spool's heartbeat could not be written")


def _record_spooled(entry: dict[str, Any]) -> bool:
    """One spooled change, under its target's row lock:
    1. Skip it if its id is recorded already.
    2. If the console has not observed the target since the change, record what the change found
       there as an external change if it differs from the last record (`_observe`), then remember
       the state the change left.
    3. Write its audit record with the real actor (by name if the account is gone), marked as
       recorded late, and its incident's timeline row. A halt without a (matching) incident opens or
       joins the target's SEV-1: nobody could declare one at the time.
    """
    entry_id = uuid.UUID(str(entry["id"]))
    at = datetime.fromisoformat(entry["at"])
    with transaction.atomic():
        if SpooledChange.objects.filter(entry_id=entry_id).exists():
            return False
        tgt = all_targets().get(entry["target"])
        before, after = _state_from(entry.get("before")), _state_from(entry.get("after"))
        if tgt is not None:
            row = _lock(tgt)
            if row.observed_at is None or row.observed_at < at:
                if before is not None:
                    _observe(tgt, row, before)
                if after is not None:
                    _remember(row, after, by=entry["actor"], changed=True)
        users = User.objects.filter(username=entry["actor"])
        if entry.get("actor_id"):
            users = users.filter(pk=entry["actor_id"])
        user = users.first()
        request = (
            ResumeRequest.objects.select_for_update().filter(pk=entry["request_id"]).first()
            if entry.get("request_id")
            else None
        )
        incident = _spooled_incident(tgt, entry, request)
        when = at.strftime("%Y-%m-%d %H:%M:%S %Z")
        record = audit.record(
            action=entry["action"],
            actor=user or entry["actor"],
            target=entry["target"],
            before=entry.get("before") or {},
            after=entry.get("after") or {},
            reason=f"{entry['reason']} [recorded late: {entry['why']}; made at {when}]",
            request_id=entry.get("request_id"),
            incident_id=incident.pk if incident else None,
            ip=entry.get("ip"),
        )
        if request is not None and request.status == ResumeStatus.PENDING:
            request.status, request.decided_at, request.note = ResumeStatus.FAILED, at, entry["reason"]
            request.save(update_fields=["status", "decided_at", "note"])
        if incident is not None:
            label = tgt.label if tgt else entry["target"]
            what = (
                f"Halted trading on {label} ({(after.reason if after else None) or 'halt'})"
                if entry["action"] == Action.ACTIVATED
                else f"Resume of {label} failed; {entry['reason']}"
            )
            incident_services.incident_record_event(
                kind=TIMELINE_KIND,
                incident=incident,
                actor=user,
                message=f"{what}, recorded late: {entry['why']}",
                data={"target": entry["target"], "spooled": str(entry_id), "event": "halted"},
            )
        SpooledChange.objects.create(entry_id=entry_id, audit_seq=record.seq, recorded_at=timezone.now())
    return True


def _state_from(data: dict[str, Any] | None) -> State | None:
    """A spooled state (State.as_dict()), read by the fields State has now."""
    if not data:
        return None
    return State(**{k: v for k, v in data.items() if k in State.__dataclass_fields__ and k != "raw"})


def _spooled_incident(
    tgt: Target | None, entry: dict[str, Any], request: ResumeRequest | None
) -> Incident | None:
    incident_id = entry.get("incident_id") or (request.incident_id if request else None)
    incident = Incident.objects.filter(pk=incident_id).first() if incident_id else None
    if incident is not None and tgt is not None and not tgt.serves(is_drill=incident.is_drill):
        log.warning("Spooled halt of %s named %s, which does not match the target", tgt.name, incident)
        incident = None
    if incident is None and tgt is not None and entry["action"] == Action.ACTIVATED:
        incident = _join_or_declare_unrecorded_halt(tgt, entry)
    return incident


def _join_or_declare_unrecorded_halt(tgt: Target, entry: dict[str, Any]) -> Incident:
    """The target's open SEV-1 kill-switch incident (a drill's for a drill target), or a new one."""
    kind = IncidentType.objects.filter(slug="kill-switch-activated").first() or IncidentType.objects.get(
        slug="other"
    )
    incident = (
        Incident.objects.filter(
            incident_type=kind, status__in=OPEN_STATUSES, severity=Severity.SEV1, is_drill=not tgt.production
        )
        .order_by("-detected_at")
        .first()
    )
    if incident is None:
        incident = incident_services.incident_declare(
            actor=None,
            title=f"Trading halted on {tgt.label} by {entry['actor']} while the console could not record it",
            incident_type=kind,
            severity=Severity.SEV1,
            affected_components=["cdb_risk", "cdb_execution"],
            description=f"{entry['reason']}. Recorded late: {entry['why']}.",
            is_drill=not tgt.production,
        )
    _name_incident(tgt, incident)
    return incident


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
        spooled_changes_record()  # changes made while the database was away, recorded with their actors
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
        data={"target": tgt.name, **state.as_dict(), "event": "resumed" if state.trading else "halted"},
    )
    return incident
