"""Every write of post-mortems: creation when an incident resolves (or on request), saving and
autosaving the document, the review steps (through postmortems.review), the deadline sweep and the
summary to stakeholders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from console.errors import DomainError
from incidents import services as incident_services
from incidents.models import Incident, Status, TimelineEvent
from postmortems import prefill, review
from postmortems.models import Draft, PostMortem, PostMortemRevision, Required, Requirement
from postmortems.review import ReviewStatus

KIND = "postmortem"  # the timeline rows of post-mortems (templates/timeline/postmortem.html)
MAX_BODY = 200_000
# The playbook's defaults, used only when the requirement rows have not been loaded.
DEFAULT_REQUIREMENTS = {1: ("yes", 48), 2: ("yes", 168), 3: ("optional", 336), 4: ("no", None)}


class PostMortemRefused(DomainError):
    pass


def requirement_for(severity: int) -> tuple[str, int | None]:
    row = Requirement.objects.filter(severity=severity).values_list("required", "deadline_hours").first()
    return row if row else DEFAULT_REQUIREMENTS[severity]


def record_event(postmortem: PostMortem, *, kind: str, actor: Any, text: str) -> None:
    incident_services.incident_record_event(
        incident=postmortem.incident_id,
        kind=KIND,
        actor=actor if isinstance(actor, User) else None,
        message=text,
        new=kind,
        data={"postmortem": postmortem.pk, "step": kind},
    )


def _create(incident: Incident, *, actor: User | None, required: bool) -> PostMortem:
    """Steps, in the caller's transaction:
    1. the deadline from the severity's requirement (hours after resolution, or now);
    2. the halted time from the kill-switch audit, the /status snapshot's numbers, the timeline;
    3. the post-mortem and its first revision (the pre-filled template), the author's object
       permission to edit it, and, when a person asked for it, a timeline row on the incident."""
    now = timezone.now()
    _, hours = requirement_for(incident.severity)
    start = incident.resolved_at or now
    intervals = prefill.halted_intervals(incident)
    halted = prefill.halted_total(intervals)
    orders, exposure = prefill.status_snapshot(incident)
    timeline = prefill.timeline_text(incident)
    author = incident.commander or incident.declared_by
    postmortem = PostMortem.objects.create(
        incident=incident,
        title=incident.title,
        required=required,
        deadline=start + timedelta(hours=hours) if hours else None,
        created_at=now,
        author=author,
        orders_affected=orders,
        exposure_usd=exposure,
        halted_seconds=halted,
        halted_detail=[
            {"target": i.target, "start": i.start.isoformat(), "end": i.end.isoformat(), "seconds": i.seconds}
            for i in intervals
        ],
        generated_timeline=timeline,
        current_revision=1,
    )
    body = prefill.document(
        incident, timeline=timeline, halted_seconds=halted, orders=orders, exposure=exposure
    )
    PostMortemRevision.objects.create(
        postmortem=postmortem,
        number=1,
        body=body,
        author=None,
        created_at=now,
        note="Pre-filled from the incident",
    )
    if author is not None:
        assign_perm("postmortems.change_postmortem", author, postmortem)
    if actor is None:
        # Created by the resolution: its status row is the record (the post-mortem panel shows it),
        # and the resolution stays the incident's latest row.
        return postmortem
    due = f", due {timezone.localtime(postmortem.deadline):%Y-%m-%d %H:%M}" if postmortem.deadline else ""
    record_event(
        postmortem,
        kind="created",
        actor=actor,
        text=f"Post-mortem {'required' if required else 'requested'}{due}; author "
        f"{author.get_username() if author else 'nobody'}",
    )
    return postmortem


def on_timeline(rows: list[TimelineEvent]) -> None:
    """The timeline listener: an incident resolving creates its post-mortem when its severity requires
    one, in the same transaction. Drills never get one here (a drill is reviewed in the drills app);
    resolving again (after a reopen) finds the existing one and creates nothing."""
    for row in rows:
        if row.kind == "status_snapshot":
            _refresh_impact(row.incident)
            continue
        if row.kind != "status_changed" or row.new_value != Status.RESOLVED:
            continue
        incident = row.incident
        if incident.is_drill or requirement_for(incident.severity)[0] != Required.YES:
            continue
        if PostMortem.objects.filter(incident_id=incident.pk).exists():
            continue
        with transaction.atomic():
            _create(incident, actor=None, required=True)


def _refresh_impact(incident: Incident) -> None:
    """A CDB `/status` snapshot written after the post-mortem was pre-filled (the one taken at
    resolution arrives after the resolution's commit) updates its orders affected and exposure while
    nobody has touched it: in draft, every revision so far the console's own. The update is a new
    revision, so an editor open on the previous one sees a conflict, not a silent change. Once a
    person has saved, the numbers are theirs."""
    pm = PostMortem.objects.select_for_update().filter(incident_id=incident.pk).first()
    if pm is None or pm.status != ReviewStatus.DRAFT or pm.revisions.filter(author__isnull=False).exists():
        return
    orders, exposure = prefill.status_snapshot(incident)
    if (orders, exposure) == (pm.orders_affected, pm.exposure_usd):
        return
    body = prefill.document(
        incident,
        timeline=pm.generated_timeline,
        halted_seconds=pm.halted_seconds,
        orders=orders,
        exposure=exposure,
    )
    number = pm.current_revision + 1
    PostMortemRevision.objects.create(
        postmortem=pm,
        number=number,
        body=body,
        author=None,
        created_at=timezone.now(),
        note="Impact from the CDB status snapshots",
    )
    pm.orders_affected, pm.exposure_usd, pm.current_revision = orders, exposure, number
    pm.save(update_fields=["orders_affected", "exposure_usd", "current_revision"])


@transaction.atomic
def postmortem_request(*, incident: Incident, actor: User) -> PostMortem:
    """An optional post-mortem asked for from the incident page (a resolved or closed incident whose
    severity makes it optional; a required one exists already)."""
    incident = Incident.objects.select_for_update().select_related("incident_type").get(pk=incident.pk)
    existing = PostMortem.objects.filter(incident=incident).first()
    if existing is not None:
        return existing
    if incident.is_drill:
        raise PostMortemRefused("A drill is reviewed in its drill review, not in a post-mortem.")
    if incident.status not in (Status.RESOLVED, Status.CLOSED):
        raise PostMortemRefused("A post-mortem is written once the incident is resolved.")
    if requirement_for(incident.severity)[0] == Required.NO:
        raise PostMortemRefused(f"The playbook asks no post-mortem for SEV-{incident.severity}.")
    try:
        with transaction.atomic():
            return _create(incident, actor=actor, required=False)
    except IntegrityError:  # created meanwhile: the unique incident wins
        return PostMortem.objects.get(incident=incident)


# --- The document: saves, autosaves, conflicts ---


@dataclass
class Conflict(Exception):
    """A save against an older revision: nothing was written."""

    postmortem: PostMortem
    base: int
    theirs: PostMortemRevision
    mine: str


def _clean(body: str) -> str:
    body = body.replace("\r\n", "\n")
    if len(body) > MAX_BODY:
        raise PostMortemRefused(f"The document is too long ({len(body)} characters, at most {MAX_BODY}).")
    return body


@transaction.atomic
def revision_save(
    *, postmortem: PostMortem, actor: User, body: str, base: int, note: str = ""
) -> PostMortemRevision:
    """An explicit save: a new revision on top of `base`, which must be the newest (else `Conflict`,
    with theirs and mine, so the person merges and saves on the newest base). Saving the same text
    again writes nothing. An approved or published post-mortem goes back to draft: its approved
    revision stays frozen and the new one needs approval again."""
    body = _clean(body)
    pm = PostMortem.objects.select_for_update().get(pk=postmortem.pk)
    current = PostMortemRevision.objects.get(postmortem=pm, number=pm.current_revision)
    if base != pm.current_revision:
        if body == current.body:
            return current
        raise Conflict(pm, base, current, body)
    Draft.objects.filter(postmortem=pm, user=actor).delete()
    if body == current.body:
        return current
    revision = PostMortemRevision.objects.create(
        postmortem=pm,
        number=pm.current_revision + 1,
        body=body,
        author=actor,
        created_at=timezone.now(),
        base=base,
        note=note.strip()[:200],
    )
    pm.current_revision = revision.number
    pm.save(update_fields=["current_revision"])
    review.review_reopen_on_edit(pm, actor)
    return revision


@transaction.atomic
def draft_autosave(
    *, postmortem: PostMortem, actor: User, body: str, base: int
) -> tuple[Draft, Conflict | None]:
    """An autosave: the person's working copy, overwritten in place (one row per person and
    post-mortem), so autosaves never add revisions. It is kept even when `base` is no longer the
    newest revision; the conflict is returned for the caller to show."""
    body = _clean(body)
    now = timezone.now()
    draft, _ = Draft.objects.update_or_create(
        postmortem_id=postmortem.pk, user=actor, defaults={"base": base, "body": body, "saved_at": now}
    )
    current = PostMortem.objects.filter(pk=postmortem.pk).values_list("current_revision", flat=True).get()
    if base == current:
        return draft, None
    theirs = PostMortemRevision.objects.get(postmortem_id=postmortem.pk, number=current)
    return draft, Conflict(postmortem, base, theirs, body)


@transaction.atomic
def draft_discard(*, postmortem: PostMortem, actor: User) -> None:
    Draft.objects.filter(postmortem=postmortem, user=actor).delete()


@transaction.atomic
def impact_update(
    *, postmortem: PostMortem, actor: User, orders_affected: int | None, exposure_usd: Decimal | None
) -> PostMortem:
    pm = PostMortem.objects.select_for_update().get(pk=postmortem.pk)
    if (pm.orders_affected, pm.exposure_usd) == (orders_affected, exposure_usd):
        return pm
    pm.orders_affected, pm.exposure_usd = orders_affected, exposure_usd
    pm.save(update_fields=["orders_affected", "exposure_usd"])
    return pm


@transaction.atomic
def summary_send(*, postmortem: PostMortem, actor: User) -> str:
    """The published post-mortem's summary to the stakeholders' channel (the playbook's post-incident
    summary email), through the outbox; once per published revision."""
    from comms.services import summary_channel
    from notify import services as notify
    from notify.models import Address
    from postmortems import export

    pm = PostMortem.objects.select_for_update().select_related("incident").get(pk=postmortem.pk)
    if pm.published_revision is None:
        raise PostMortemRefused("Only a published post-mortem's summary is sent.")
    channel = summary_channel()
    incident = pm.incident
    text = (
        f"Post-mortem of {incident.reference} {incident.title} (SEV-{incident.severity}) published.\n\n"
        f"{export.summary_of(pm) or '(no summary)'}\n\n"
        f"Trading halted for {prefill.duration_text(pm.halted_seconds)}."
    )
    notify.messages_enqueue(
        [
            notify.Outgoing(
                address_kind=Address.CHANNEL,
                address=channel,
                kind="postmortem_summary",
                title=f"Post-mortem: {incident.reference} {incident.title}"[:300],
                body=text,
                incident_id=incident.pk,
                dedupe_key=f"postmortem-summary:{pm.pk}:{pm.published_revision}",
            )
        ]
    )
    record_event(pm, kind="summary_sent", actor=actor, text=f"Summary sent to #{channel}")
    return channel


# --- Deadlines: one sweep from the database, each reminder exactly once ---

REMIND_BEFORE = timedelta(hours=24)
SWEEP_BATCH = 200


def deadlines_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Remind authors 24 h before the deadline; when overdue, notify the author and the tech lead on
    duty. Reads what is due from the database (unpublished post-mortems with a deadline, not yet
    reminded or notified); each one is claimed and its messages queued in one transaction
    (`_remind`, `_escalate`), so a worker killed between steps rolls both back and the next sweep
    does it again: never lost, never doubled (the outbox's dedupe keys guard a repeat as well)."""
    now = now or timezone.now()
    open_ = PostMortem.objects.exclude(status=ReviewStatus.PUBLISHED).filter(deadline__isnull=False)
    to_remind = list(
        open_.filter(reminded_at=None, deadline__lte=now + REMIND_BEFORE, deadline__gt=now).values_list(
            "pk", flat=True
        )[:SWEEP_BATCH]
    )
    overdue = list(
        open_.filter(overdue_notified_at=None, deadline__lte=now).values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    return {
        "reminded": sum(_remind(pk, now) for pk in to_remind),
        "escalated": sum(_escalate(pk, now) for pk in overdue),
    }


def _notify(pm: PostMortem, user: User, *, title: str, text: str, key: str, now: datetime) -> None:
    from notify import services as notify

    notify.inbox_deliver(
        user=user,
        title=title,
        body=text,
        kind="reminder",
        incident_id=pm.incident_id,
        dedupe_key=key,
        now=now,
    )
    notify.messages_enqueue(
        notify.person_outgoing(
            user=user, title=title, body=text, kind="reminder", incident_id=pm.incident_id, dedupe_key=key
        ),
        now=now,
    )


def _link(pm: PostMortem) -> str:
    from django.conf import settings
    from django.urls import reverse

    return settings.CONSOLE_URL.rstrip("/") + reverse("postmortems:detail", args=[pm.pk])


@transaction.atomic
def _remind(pk: int, now: datetime) -> bool:
    # The claim: only one sweep gets the row; the messages commit with it or not at all.
    if not PostMortem.objects.filter(pk=pk, reminded_at=None).update(reminded_at=now):
        return False
    pm = PostMortem.objects.select_related("author", "incident").get(pk=pk)
    assert pm.deadline is not None
    due = timezone.localtime(pm.deadline)
    if pm.author is not None:
        _notify(
            pm,
            pm.author,
            title=f"Post-mortem of {pm.incident.reference} due {due:%Y-%m-%d %H:%M}",
            text=f"The post-mortem of {pm.incident.reference} {pm.incident.title} is due "
            f"{due:%Y-%m-%d %H:%M %Z} (24 hours left): {_link(pm)}",
            key=f"postmortem-due:{pm.pk}:{pm.deadline.isoformat()}",
            now=now,
        )
    record_event(
        pm, kind="reminded", actor=None, text=f"Post-mortem due in 24 h: reminded {_name(pm.author)}"
    )
    return True


@transaction.atomic
def _escalate(pk: int, now: datetime) -> bool:
    from oncall import selectors as oncall
    from oncall.models import Duty

    if not PostMortem.objects.filter(pk=pk, overdue_notified_at=None).update(overdue_notified_at=now):
        return False
    pm = PostMortem.objects.select_related("author", "incident").get(pk=pk)
    assert pm.deadline is not None
    # A post-mortem never reminded (created already late, or the 24 h passed unswept) gets no stale
    # "due in 24 h" afterwards.
    PostMortem.objects.filter(pk=pk, reminded_at=None).update(reminded_at=now)
    people = {u.pk: u for u in [pm.author, *oncall.on_call(Duty.TECH_LEAD, now)] if u is not None}
    due = timezone.localtime(pm.deadline)
    for user in people.values():
        _notify(
            pm,
            user,
            title=f"Post-mortem of {pm.incident.reference} overdue",
            text=f"The post-mortem of {pm.incident.reference} {pm.incident.title} was due "
            f"{due:%Y-%m-%d %H:%M %Z} and is {pm.get_status_display().lower()}; "
            f"author {_name(pm.author)}: {_link(pm)}",
            key=f"postmortem-overdue:{pm.pk}:{pm.deadline.isoformat()}:{user.pk}",
            now=now,
        )
    names = ", ".join(_name(u) for u in people.values()) or "nobody"
    record_event(pm, kind="overdue", actor=None, text=f"Post-mortem overdue: notified {names}")
    return True


def _name(user: User | None) -> str:
    return user.get_username() if user is not None else "nobody"
