"""Every URL of the project, for anonymous and every persona: redirect to login, 403/404, or allowed.

A URL without a row here fails `test_every_url_has_a_row`, so the matrix grows with the project.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from incidents import services
from incidents.models import Checklist, ChecklistKind, IncidentType, Severity
from tests.incidents.factories import declare, make_user

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "norole", "viewer", "responder", "commander", "lead", "executive", "admin")
LOGIN = "login"  # expected: 302 to the login page
OK = "ok"  # expected: 200, 204, or 302 back into the console


@dataclass
class Row:
    name: str
    method: str
    expect: dict[str, Any]
    data: Any = field(default=None)  # callable(incident) -> dict
    query: Any = field(default=None)
    label: str = ""
    args: Any = field(default=None)  # callable(context) -> URL args


def roles(**by_persona: Any) -> dict[str, Any]:
    return {"anonymous": LOGIN, **by_persona}


EVERYONE = roles(norole=OK, viewer=OK, responder=OK, commander=OK, lead=OK, executive=OK, admin=OK)
SEE = roles(norole=404, viewer=OK, responder=OK, commander=OK, lead=OK, executive=OK, admin=OK)
DECLARE = roles(norole=403, viewer=403, responder=OK, commander=OK, lead=OK, executive=403, admin=OK)
ACT = roles(norole=404, viewer=403, responder=OK, commander=OK, lead=OK, executive=403, admin=OK)
EDIT = roles(norole=404, viewer=403, responder=403, commander=OK, lead=OK, executive=403, admin=OK)
OVERRIDE = roles(norole=404, viewer=403, responder=403, commander=403, lead=OK, executive=403, admin=OK)
KS_VIEW = roles(norole=403, viewer=OK, responder=OK, commander=OK, lead=OK, executive=OK, admin=OK)
KS_HALT = roles(norole=403, viewer=403, responder=OK, commander=OK, lead=OK, executive=403, admin=OK)
KS_LEAD = roles(norole=403, viewer=403, responder=403, commander=403, lead=OK, executive=403, admin=OK)
PM_EDIT = roles(norole=404, viewer=403, responder=403, commander=403, lead=OK, executive=403, admin=OK)
PM_ASSIGNED = roles(norole=404, viewer=403, responder=403, commander=403, lead=403, executive=403, admin=403)
POST_ONLY = roles(norole=405, viewer=405, responder=405, commander=405, lead=405, executive=405, admin=405)


def _pm(c: Any) -> list[int]:
    return [c.postmortem.pk]


def _proposal(c: Any) -> list[int]:
    return [c.proposal.pk]


def _proposal_form(c: Any, *, base: int | None) -> dict[str, Any]:
    from incidents.playbook import current_version

    version = current_version()
    assert version is not None
    text = version.yaml.replace("response_minutes: 240", "response_minutes: 30")
    form = {"title": "Answer SEV-3 in 30 minutes", "reason": "matrix", "yaml": text}
    return form if base is None else {**form, "base": str(base)}


def _type_pk(_: Any) -> dict[str, Any]:
    return {"title": "x", "incident_type": IncidentType.objects.get(slug="other").pk, "severity": "3"}


ROWS = [
    Row("incidents:home", "get", EVERYONE),
    Row("incidents:declare", "get", DECLARE),
    Row("incidents:declare", "post", DECLARE, data=_type_pk),
    Row("incidents:declare_suggest", "get", DECLARE),
    Row("incidents:detail", "get", SEE),
    Row("incidents:poll", "get", SEE, query=lambda i: {"v": i.version}),
    Row("incidents:timeline", "get", SEE),
    Row("incidents:facts", "get", SEE),
    Row("incidents:edit", "get", EDIT),
    Row(
        "incidents:edit",
        "post",
        EDIT,
        data=lambda i: {"title": "renamed", "description": "", "affected_components": ""},
    ),
    Row("incidents:acknowledge", "post", ACT, data=lambda i: {}),
    Row("incidents:acknowledge", "get", POST_ONLY, label="get"),
    Row(
        "incidents:transition", "post", ACT, data=lambda i: {"to_status": "resolved", "from_status": "triage"}
    ),
    Row(
        "incidents:transition",
        "post",
        OVERRIDE,
        label="override",
        data=lambda i: {"to_status": "resolved", "override_reason": "exchange is back"},
    ),
    Row("incidents:severity", "post", ACT, data=lambda i: {"severity": "1", "reason": "orders failing"}),
    Row("incidents:commander", "post", ACT, data=lambda i: {"commander": i.commander_id}),
    Row(
        "incidents:type",
        "post",
        ACT,
        data=lambda i: {
            "incident_type": IncidentType.objects.get(slug="service-crash-loop").pk,
            "from_type": i.incident_type.slug,
        },
    ),
    Row("incidents:type", "get", POST_ONLY, label="get"),
    Row("incidents:note", "post", ACT, data=lambda i: {"text": "looking"}),
    Row(
        "incidents:checklist",
        "post",
        ACT,
        data=lambda i: {"item": i.checklist_items.filter(kind=ChecklistKind.TRIAGE).first().pk, "done": "1"},
    ),
    # The playbook's versions: every role reads them; leads and admins record the quarterly review.
    Row("incidents:playbook", "get", KS_VIEW, args=lambda c: []),
    Row("incidents:playbook_versions", "get", KS_VIEW, args=lambda c: []),
    Row("incidents:playbook_version", "get", KS_VIEW, args=lambda c: [1]),
    Row("incidents:playbook_version_yaml", "get", KS_VIEW, args=lambda c: [1]),
    Row("incidents:playbook_diff", "get", KS_VIEW, args=lambda c: [1, 1]),
    Row("incidents:playbook_review", "post", KS_LEAD, args=lambda c: [], data=lambda c: {"note": "ok"}),
    Row("incidents:playbook_review", "get", POST_ONLY, label="get", args=lambda c: []),
    Row("killswitch:index", "get", KS_VIEW),
    Row("killswitch:banner", "get", KS_VIEW),
    Row("killswitch:audit", "get", KS_LEAD),
    Row("killswitch:audit", "get", KS_LEAD, label="csv", query=lambda c: {"format": "csv"}),
    Row("killswitch:activate", "get", KS_HALT, args=lambda c: ["production"]),
    Row(
        "killswitch:activate",
        "post",
        KS_HALT,
        args=lambda c: ["production"],
        data=lambda c: {"reason": "manual", "message": "matrix", "confirm": "yes"},
    ),
    Row("killswitch:request_resume", "get", KS_LEAD, args=lambda c: ["production"]),
    Row(
        "killswitch:request_resume",
        "post",
        KS_LEAD,
        args=lambda c: ["production"],
        data=lambda c: {"justification": "Root cause fixed and verified healthy"},
    ),
    Row("killswitch:approve", "post", KS_LEAD, args=lambda c: [c.request.pk], data=lambda c: {}),
    Row("killswitch:reject", "post", KS_LEAD, args=lambda c: [c.request.pk], data=lambda c: {"note": "no"}),
    # The status board and the top bar's liveness: every role that may view incidents (KS_VIEW's shape).
    Row("detection:board", "get", KS_VIEW),
    Row("detection:board", "post", POST_ONLY, label="post", data=lambda c: {}),
    Row("console:liveness", "get", KS_VIEW),
    # Webhooks: bearer token, not session; a person's login grants nothing there.
    Row("detection:alertmanager", "post", dict.fromkeys(PERSONAS, 401), data=lambda c: {}),
    Row("detection:alertmanager", "get", dict.fromkeys(PERSONAS, 405), label="get"),
    Row("detection:grafana", "post", dict.fromkeys(PERSONAS, 401), data=lambda c: {}),
    Row("detection:grafana", "get", dict.fromkeys(PERSONAS, 405), label="get"),
    Row("detection:status_snapshot", "post", ACT, args=lambda c: [c.incident.pk], data=lambda c: {}),
    Row("detection:status_snapshot", "get", POST_ONLY, label="get", args=lambda c: [c.incident.pk]),
    # A person's own inbox and contact points: everyone logged in, each sees only their own.
    Row("notify:inbox", "get", EVERYONE),
    Row("notify:bell", "get", EVERYONE),
    Row("notify:mark_read", "post", EVERYONE, data=lambda c: {}),
    Row("notify:mark_read", "get", POST_ONLY, label="get"),
    Row("notify:contact", "get", EVERYONE),
    Row(
        "notify:contact",
        "post",
        EVERYONE,
        data=lambda c: {"email": "", "chat_handle": "@x", "webhook_url": ""},
    ),
    # On-call: every role sees the rota and keeps its own calendar feeds; leads and admins edit it.
    Row("oncall:index", "get", KS_VIEW),
    Row("oncall:rotation_new", "get", KS_LEAD),
    Row("oncall:rotation_new", "post", KS_LEAD, data=lambda c: _rotation_form()),
    Row("oncall:rotation_edit", "get", KS_LEAD, args=lambda c: [c.rotation.pk]),
    Row(
        "oncall:rotation_edit",
        "post",
        KS_LEAD,
        args=lambda c: [c.rotation.pk],
        data=lambda c: _rotation_form(),
    ),
    Row("oncall:override_new", "get", KS_LEAD),
    Row("oncall:override_new", "post", KS_LEAD, data=lambda c: _override_form(c)),
    Row("oncall:override_delete", "post", KS_LEAD, args=lambda c: [c.override.pk], data=lambda c: {}),
    Row("oncall:feeds", "get", KS_VIEW),
    Row("oncall:feeds", "post", KS_VIEW, data=lambda c: {"rotation": ""}),
    # Someone else's feed: not found for everyone; the calendar link itself is the credential.
    Row(
        "oncall:feed_revoke",
        "post",
        roles(**dict.fromkeys(PERSONAS[1:], 404)),
        args=lambda c: [c.feed.pk],
        data=lambda c: {},
    ),
    Row("oncall:ics", "get", dict.fromkeys(PERSONAS, 404), args=lambda c: ["unknown-token"]),
    # Drills: everyone with a role reads; responders start them; leads schedule, move, cancel, review.
    Row("drills:index", "get", KS_VIEW),
    Row("drills:calendar", "get", KS_VIEW),
    Row("drills:feed_link", "get", KS_VIEW),
    Row("drills:feed_link", "post", KS_VIEW, data=lambda c: {}),
    Row("drills:ics", "get", dict.fromkeys(PERSONAS, 404), args=lambda c: ["unknown-token"]),
    Row("drills:new", "get", KS_LEAD),
    Row("drills:new", "post", KS_LEAD, data=lambda c: _drill_form()),
    Row("drills:detail", "get", SEE, args=lambda c: [c.drill.pk]),
    Row(
        "drills:move",
        "post",
        OVERRIDE,
        args=lambda c: [c.drill.pk],
        data=lambda c: {"scheduled_for": "2099-01-02T10:00"},
    ),
    Row("drills:cancel", "post", OVERRIDE, args=lambda c: [c.drill.pk], data=lambda c: {"reason": "matrix"}),
    Row("drills:start", "post", ACT, args=lambda c: [c.drill.pk], data=lambda c: {}),
    Row("drills:review", "get", SEE, args=lambda c: [c.drill.pk]),
    Row("drills:review", "post", OVERRIDE, args=lambda c: [c.drill.pk], data=lambda c: {"findings": "ok"}),
    # Composing messages: whoever may act on the incident (its commander included).
    Row("comms:preview", "post", ACT, data=lambda c: {"kind": "update", "progress": "looking"}),
    Row("comms:send", "post", ACT, data=lambda c: {"kind": "update", "title": "t", "text": "Still on it"}),
    # Post-mortems: every role reads them; the author (object permission), leads and admins edit;
    # leads and admins assign reviewers; only the assigned reviewers and approver (object permissions,
    # none of these personas) comment, sign off and approve.
    Row("postmortems:list", "get", EVERYONE),
    Row("postmortems:detail", "get", SEE, args=_pm),
    Row("postmortems:history", "get", SEE, args=_pm),
    Row("postmortems:export", "get", SEE, args=_pm),
    Row("postmortems:edit", "get", PM_EDIT, args=_pm),
    Row("postmortems:edit", "post", PM_EDIT, args=_pm, data=lambda c: {"body": "# new", "base": "1"}),
    Row("postmortems:autosave", "post", PM_EDIT, args=_pm, data=lambda c: {"body": "# draft", "base": "1"}),
    Row("postmortems:preview", "post", PM_EDIT, args=_pm, data=lambda c: {"body": "*x*"}),
    Row("postmortems:impact", "post", PM_EDIT, args=_pm, data=lambda c: {"orders_affected": "3"}),
    Row("postmortems:assign", "post", PM_EDIT, args=_pm, data=lambda c: {"approver": ""}),
    Row("postmortems:submit", "post", PM_EDIT, args=_pm, data=lambda c: {}),
    Row("postmortems:publish", "post", PM_EDIT, args=_pm, data=lambda c: {}),
    Row("postmortems:summary", "post", PM_EDIT, args=_pm, data=lambda c: {}),
    Row("postmortems:signoff", "post", PM_ASSIGNED, args=_pm, data=lambda c: {}),
    Row("postmortems:approve", "post", PM_ASSIGNED, args=_pm, data=lambda c: {}),
    Row(
        "postmortems:comment",
        "post",
        PM_ASSIGNED,
        args=_pm,
        data=lambda c: {"section": "Summary", "body": "?"},
    ),
    Row(
        "postmortems:comment_resolve",
        "post",
        PM_ASSIGNED,
        args=lambda c: [c.postmortem.pk, c.comment.pk],
        data=lambda c: {},
    ),
    Row("postmortems:request", "post", ACT, args=lambda c: [c.incident.pk], data=lambda c: {}),
    # Playbook proposals: every role reads them; responders, leads and admins propose; the author
    # (object permission, none of these personas) and the playbook's keepers (leads, admins) edit,
    # assign and submit; only the assigned reviewers and approver comment, sign off and approve.
    Row("playbookreview:list", "get", KS_VIEW),
    Row("playbookreview:new", "get", DECLARE),
    Row("playbookreview:new", "post", DECLARE, data=lambda c: _proposal_form(c, base=None)),
    Row("playbookreview:detail", "get", SEE, args=_proposal),
    Row("playbookreview:history", "get", SEE, args=_proposal),
    Row("playbookreview:edit", "get", PM_EDIT, args=_proposal),
    Row("playbookreview:edit", "post", PM_EDIT, args=_proposal, data=lambda c: _proposal_form(c, base=1)),
    Row("playbookreview:assign", "post", PM_EDIT, args=_proposal, data=lambda c: {"approver": ""}),
    Row("playbookreview:submit", "post", PM_EDIT, args=_proposal, data=lambda c: {}),
    Row("playbookreview:rebase", "post", PM_EDIT, args=_proposal, data=lambda c: {}),
    Row("playbookreview:signoff", "post", PM_ASSIGNED, args=_proposal, data=lambda c: {}),
    Row("playbookreview:approve", "post", PM_ASSIGNED, args=_proposal, data=lambda c: {}),
    Row("playbookreview:approve", "get", POST_ONLY, label="get", args=_proposal),
    Row(
        "playbookreview:comment",
        "post",
        PM_ASSIGNED,
        args=_proposal,
        data=lambda c: {"section": "Reason", "body": "?"},
    ),
    Row(
        "playbookreview:comment_resolve",
        "post",
        PM_ASSIGNED,
        args=lambda c: [c.proposal.pk, c.proposal_comment.pk],
        data=lambda c: {},
    ),
    # Prometheus's /metrics: a bearer token (METRICS_TOKEN, unset here) or an allowed network, never
    # a session.
    Row("metrics", "get", dict.fromkeys(PERSONAS, 401)),
    Row("metrics", "post", dict.fromkeys(PERSONAS, 405), label="post", data=lambda c: {}),
    Row("login", "get", {"anonymous": OK, **{p: OK for p in PERSONAS[1:]}}),
    # The login's code step: without a right password first in this session, back to the login page.
    Row("login_code", "get", dict.fromkeys(PERSONAS, LOGIN)),
    Row("login_code", "post", dict.fromkeys(PERSONAS, LOGIN), data=lambda c: {"code": "123456"}),
    # Everyone enrols and removes their own second factor; a form without code or password is a 422.
    Row("console:second_factor", "get", EVERYONE),
    Row("console:second_factor", "post", roles(**dict.fromkeys(PERSONAS[1:], 422)), data=lambda c: {}),
    Row("console:second_factor_remove", "post", EVERYONE, data=lambda c: {}),
    Row("console:second_factor_remove", "get", POST_ONLY, label="get"),
    # Action items: everyone keeps their own list; every role reads them all; responders, leads and
    # admins add and edit (the owner may always move their own item's status: tests/actions).
    Row("actions:mine", "get", EVERYONE),
    Row("actions:index", "get", KS_VIEW),
    Row("actions:create", "post", ACT, args=lambda c: [c.incident.pk], data=lambda c: {"title": "Follow up"}),
    Row("actions:create", "get", POST_ONLY, label="get", args=lambda c: [c.incident.pk]),
    Row("actions:edit", "get", ACT, args=lambda c: [c.item.pk]),
    Row("actions:edit", "post", ACT, args=lambda c: [c.item.pk], data=lambda c: {"title": "Renamed"}),
    Row("actions:status", "post", ACT, args=lambda c: [c.item.pk], data=lambda c: {"status": "done"}),
    Row("actions:status", "get", POST_ONLY, label="get", args=lambda c: [c.item.pk]),
    Row("logout", "post", dict.fromkeys(PERSONAS, LOGIN)),  # logging out always ends on the login page
]


def _rotation_form() -> dict[str, Any]:
    names = "\n".join(User.objects.filter(groups__name="responder").values_list("username", flat=True)[:1])
    return {
        "name": "matrix",
        "duty": "tech_lead",
        "time_zone": "UTC",
        "effective_from": "2026-01-05",
        "handoff_time": "09:00",
        "handoff_weekday": "",
        "shift_hours": "24",
        "members": names,
    }


def _drill_form() -> dict[str, Any]:
    from drills.models import DrillType

    return {"drill_type": DrillType.objects.get(slug="failover-test").pk, "scheduled_for": "2099-03-04T10:00"}


def _override_form(c: Any) -> dict[str, Any]:
    return {
        "rotation": c.rotation.pk,
        "user": c.incident.commander_id,
        "starts_at": "2099-01-01T00:00",
        "ends_at": "2099-01-02T00:00",
    }


def _all_url_names(patterns: list[Any] | None = None, prefix: str = "") -> set[str]:
    names: set[str] = set()
    for p in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(p, URLResolver):
            if p.app_name == "admin":
                continue  # Django admin: covered by test_admin_needs_staff below.
            ns = f"{p.namespace}:" if p.namespace else prefix
            names |= _all_url_names(p.url_patterns, ns)
        elif isinstance(p, URLPattern) and p.name:
            names.add(prefix + p.name)
    return names


def test_every_url_has_a_row():
    assert _all_url_names() == {r.name for r in ROWS}


def _persona(name: str, incident: Any) -> Any:
    if name == "anonymous":
        return None
    if name == "commander":
        user = make_user(role="responder")
        services.incident_assign_commander(incident=incident, actor=user, commander=user)
        return user
    if name == "norole":
        return make_user()
    return make_user(role=name, is_staff=name == "admin")


def _params():
    for row in ROWS:
        for persona in PERSONAS:
            yield pytest.param(
                row, persona, id=f"{row.name}-{row.method}{'-' + row.label if row.label else ''}-{persona}"
            )


@dataclass
class Context:
    incident: Any
    request: Any = None
    rotation: Any = None
    override: Any = None
    feed: Any = None
    drill: Any = None
    item: Any = None
    postmortem: Any = None
    comment: Any = None
    proposal: Any = None
    proposal_comment: Any = None

    def __getattr__(self, name: str) -> Any:  # rows written for an incident read its attributes
        return getattr(self.incident, name)


@pytest.mark.parametrize(("row", "persona"), list(_params()))
def test_matrix(client, ks_files, row: Row, persona: str):
    owner = make_user(role="responder")
    incident = declare(owner, severity=Severity.SEV4)
    services.incident_acknowledge(incident=incident, actor=owner)
    services.incident_assign_commander(incident=incident, actor=owner, commander=owner)
    context = Context(incident)
    if row.name in ("killswitch:approve", "killswitch:reject", "killswitch:request_resume"):
        from killswitch import services as ks

        ks.killswitch_activate(target="production", actor=owner, reason="manual", message="matrix")
        if row.name != "killswitch:request_resume":
            context.request = ks.killswitch_request_resume(
                target="production",
                actor=make_user(role="lead"),
                justification="Root cause fixed and verified",
            )
    if row.name.startswith("oncall:"):
        from oncall import services as oncall
        from tests.oncall.factories import rotation

        context.rotation = rotation(owner)
        context.override = oncall.override_create(
            rotation=context.rotation,
            user=owner,
            starts_at=timezone.now(),
            ends_at=timezone.now() + timedelta(hours=1),
            actor=owner,
        )
        context.feed, _ = oncall.calendar_feed_create(user=owner)
    if row.name.startswith("drills:"):
        from drills.models import Status
        from tests.drills.factories import drill

        running = row.name == "drills:review"
        context.drill = drill(
            at=timezone.now() + timedelta(days=3),
            status=Status.RUNNING if running else Status.SCHEDULED,
            started_at=timezone.now() if running else None,
        )
    if row.name.startswith("actions:"):
        from actions.services import action_item_create

        context.item = action_item_create(incident=incident, actor=owner, title="Matrix item", owner=owner)
    if row.name.startswith("postmortems:"):
        from postmortems import review
        from postmortems import services as pm_services

        incident.status = "resolved"  # a post-mortem on request, as a resolved incident gets it
        incident.save(update_fields=["status"])
        with transaction.atomic():
            context.postmortem = pm_services._create(incident, actor=owner, required=False)
        reviewer = make_user(role="responder")
        review.review_assign(document=context.postmortem, actor=owner, reviewers=[reviewer], approver=None)
        context.comment = review.review_comment_add(
            document=context.postmortem, actor=reviewer, section="Summary", body="Why?"
        )
    if row.name.startswith("playbookreview:"):
        from playbookreview import services as proposals

        context.proposal = proposals.proposal_create(actor=owner, title="Matrix", reason="Because")
        reviewer = make_user(role="responder")
        proposals.proposal_assign(
            proposal=context.proposal, actor=owner, reviewers=[reviewer], approver=make_user(role="lead")
        )
        context.proposal_comment = proposals.proposal_comment(
            proposal=context.proposal, actor=reviewer, section="Reason", body="Why?"
        )
    user = _persona(persona, incident)
    incident.refresh_from_db()
    if user is not None:
        client.force_login(user)
    needs_pk = row.name.startswith(("incidents:", "comms:")) and row.name not in (
        "incidents:home",
        "incidents:declare",
        "incidents:declare_suggest",
    )
    args = row.args(context) if row.args else [incident.pk] if needs_pk else []
    url = reverse(row.name, args=args)
    kwargs = {"data": row.query(context)} if row.query else {}
    if row.method == "post":
        response = client.post(url, row.data(context) if row.data else {})
    else:
        response = client.get(url, **kwargs)

    expected = row.expect[persona]
    if expected == LOGIN:
        assert response.status_code == 302, response.status_code
        assert response.url.startswith(reverse("login")), response.url
    elif expected == OK:
        assert response.status_code in (200, 204, 302), response.status_code
        if response.status_code == 302:
            assert not response.url.startswith(reverse("login")), response.url
    else:
        assert response.status_code == expected


@pytest.mark.parametrize(
    ("persona", "expected"), [("anonymous", 302), ("responder", 302), ("lead", 302), ("admin", 200)]
)
def test_admin_needs_staff(client, persona, expected):
    if persona != "anonymous":
        client.force_login(make_user(role=persona, is_staff=persona == "admin"))
    response = client.get(reverse("admin:index"))
    assert response.status_code == expected
    if expected == 302:
        assert "/admin/login/" in response.url


def test_admin_role_reads_the_playbook_data_in_admin_but_cannot_edit_it(client):
    from incidents.models import IncidentType

    client.force_login(make_user(role="admin", is_staff=True))
    assert client.get(reverse("admin:incidents_incidenttype_changelist")).status_code == 200
    checklist = client.get(reverse("admin:incidents_checklist_change", args=[Checklist.objects.first().pk]))
    assert checklist.status_code == 200 and b"The playbook is versioned" in checklist.content
    other = IncidentType.objects.get(slug="other")
    response = client.post(
        reverse("admin:incidents_incidenttype_change", args=[other.pk]),
        {"slug": "other", "name": "Other", "runbook_steps": "Look around", "position": "9"},
    )
    assert response.status_code == 403
    other.refresh_from_db()
    assert other.runbook_steps == []
