"""Every permission-scoped read of incidents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from guardian.models import GroupObjectPermission, UserObjectPermission
from guardian.shortcuts import get_objects_for_user

from incidents.models import (
    OPEN_STATUSES,
    ChecklistKind,
    ConsoleSession,
    Incident,
    IncidentChecklistItem,
    Severity,
    Status,
    TimelineEvent,
)

TIMELINE_PAGE = 100


def incidents_visible_to(user: Any) -> QuerySet[Incident]:
    """Incidents the user may view: all with the model permission, else those granted per object."""
    if not user.is_authenticated:
        return Incident.objects.none()
    return get_objects_for_user(
        user, "incidents.view_incident", klass=Incident, accept_global_perms=True, with_superuser=True
    )


def incident_get_for_user(user: Any, pk: int, *, perm: str | None = None) -> Incident:
    """The incident if the user may see it (else 404) and, when `perm` is given, hold it (else 403)."""
    incident = (
        incidents_visible_to(user)
        .select_related("incident_type", "commander", "acknowledged_by", "declared_by")
        .filter(pk=pk)
        .first()
    )
    if incident is None:
        raise Http404("No such incident.")
    if perm and not user_can(user, perm, incident):
        raise PermissionDenied(f"You may not do this on {incident.reference}.")
    return incident


def user_can(user: Any, perm: str, incident: Incident | None = None) -> bool:
    """Model permission (role), or object permission on this incident (e.g. its commander)."""
    if user.has_perm(perm):
        return True
    return incident is not None and user.has_perm(perm, incident)


@dataclass(frozen=True)
class IncidentPermissions:
    act: bool
    edit: bool
    override: bool


def incident_permissions(user: Any, incident: Incident) -> IncidentPermissions:
    return IncidentPermissions(
        act=user_can(user, "incidents.act_on_incident", incident),
        edit=user_can(user, "incidents.change_incident", incident),
        override=user_can(user, "incidents.override_prerecovery", incident),
    )


def board_for(user: Any, *, filters: dict[str, Any]) -> QuerySet[Incident]:
    """Open incidents for the console home: severity first, then oldest first."""
    qs = (
        incidents_visible_to(user)
        .filter(status__in=filters.get("status") or OPEN_STATUSES)
        .select_related("incident_type", "commander")
        .order_by("severity", "detected_at", "pk")
    )
    return _apply_filters(qs, user, filters)


def closed_search(user: Any, *, filters: dict[str, Any]) -> QuerySet[Incident]:
    qs = (
        incidents_visible_to(user)
        .filter(status__in=[Status.RESOLVED, Status.CLOSED])
        .select_related("incident_type", "commander")
        .order_by("-detected_at", "-pk")
    )
    if q := filters.get("q"):
        ref = q.upper().removeprefix("INC-")
        cond = Q(title__icontains=q) | Q(description__icontains=q)
        if ref.isdigit():
            cond |= Q(pk=int(ref))
        qs = qs.filter(cond)
    return _apply_filters(qs, user, {**filters, "status": None})


def _apply_filters(qs: QuerySet[Incident], user: Any, filters: dict[str, Any]) -> QuerySet[Incident]:
    if severities := filters.get("severity"):
        qs = qs.filter(severity__in=severities)
    if types := filters.get("type"):
        qs = qs.filter(incident_type__slug__in=types)
    if filters.get("mine"):
        qs = qs.filter(Q(commander=user) | Q(acknowledged_by=user) | Q(declared_by=user))
    return qs


def open_counts_by_severity(user: Any) -> dict[int, int]:
    rows = (
        incidents_visible_to(user)
        .filter(status__in=OPEN_STATUSES)
        .values("severity")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = dict.fromkeys(Severity.values, 0)
    counts.update({r["severity"]: r["n"] for r in rows})
    return counts


def checklists_for(incident: Incident) -> dict[str, list[IncidentChecklistItem]]:
    grouped: dict[str, list[IncidentChecklistItem]] = {k: [] for k in ChecklistKind.values}
    for item in incident.checklist_items.select_related("done_by").order_by("kind", "position"):
        grouped[item.kind].append(item)
    return grouped


def pre_recovery_complete(incident: Incident) -> bool:
    return not incident.checklist_items.filter(kind=ChecklistKind.PRE_RECOVERY, done_at__isnull=True).exists()


def timeline_for(
    incident: Incident, *, after: int | None = None, limit: int = TIMELINE_PAGE
) -> list[TimelineEvent]:
    """Newest first, up to the version the caller rendered (so a poll never shows an event twice)."""
    qs = TimelineEvent.objects.filter(incident=incident, id__lte=incident.version).select_related("actor")
    qs = qs.order_by("-id")
    if after is not None:
        qs = qs.filter(id__gt=after)
    return list(qs[:limit])


def commander_candidates() -> QuerySet[Any]:
    """Active users holding the responder permission through a role (or superusers)."""
    User = get_user_model()
    roles = Group.objects.filter(
        permissions__codename="act_on_incident", permissions__content_type__app_label="incidents"
    )
    return (
        User.objects.filter(Q(groups__in=roles) | Q(is_superuser=True), is_active=True)
        .distinct()
        .order_by("username")
    )


@dataclass(frozen=True)
class PollState:
    version: int
    status: str


def poll_state(*, session_key: str, incident_id: int, now: datetime | None = None) -> PollState | None:
    """The live page's cheap check, in one query: session valid, user active and allowed to view the
    incident, and the incident's version. None when anything is off: the caller then takes the slow,
    fully checked path (which answers with a login redirect, 403 or 404 as usual)."""
    now = now or timezone.now()
    User = get_user_model()
    user = OuterRef("user_id")
    perm = Q(codename="view_incident", content_type__app_label="incidents")
    incident = Incident.objects.filter(pk=incident_id)
    row = (
        ConsoleSession.objects.filter(session_key=session_key, expire_date__gt=now, user_id__isnull=False)
        .annotate(
            version=Subquery(incident.values("version")[:1]),
            status=Subquery(incident.values("status")[:1]),
            password=Subquery(User.objects.filter(pk=user, is_active=True).values("password")[:1]),
            superuser=Exists(User.objects.filter(pk=user, is_superuser=True)),
            by_group=Exists(
                User.groups.through.objects.filter(
                    user_id=user,
                    group__permissions__codename="view_incident",
                    group__permissions__content_type__app_label="incidents",
                )
            ),
            by_user=Exists(
                User.user_permissions.through.objects.filter(
                    user_id=user,
                    permission__codename="view_incident",
                    permission__content_type__app_label="incidents",
                )
            ),
            by_object=Exists(
                UserObjectPermission.objects.filter(
                    user_id=user,
                    object_pk=str(incident_id),
                    permission__in=_perm_ids(perm),
                )
            ),
            by_group_object=Exists(
                GroupObjectPermission.objects.filter(
                    group__user=user,
                    object_pk=str(incident_id),
                    permission__in=_perm_ids(perm),
                )
            ),
        )
        .values_list(
            "session_data",
            "user_id",
            "version",
            "status",
            "password",
            "superuser",
            "by_group",
            "by_user",
            "by_object",
            "by_group_object",
        )
        .first()
    )
    if row is None:
        return None
    session_data, user_id, version, status, password, *grants = row
    if version is None or password is None or not any(grants):
        return None
    data = ConsoleSession.get_session_store_class()().decode(session_data)
    if str(data.get(SESSION_KEY)) != str(user_id):
        return None
    expected = User(password=password).get_session_auth_hash()
    if not constant_time_compare(str(data.get(HASH_SESSION_KEY, "")), expected):
        return None
    return PollState(version=version, status=status)


def _perm_ids(perm: Q) -> QuerySet[Any]:
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(perm).values("pk")
