from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from incidents.models import Severity
from killswitch import services
from killswitch.export import escape_formula
from killswitch.models import Action, AuditRecord
from tests.incidents.factories import declare, make_user

pytestmark = pytest.mark.django_db
ACTIVATE = reverse("killswitch:activate", args=["production"])


def activations():
    return AuditRecord.objects.filter(action=Action.ACTIVATED).count()


def test_halting_takes_one_confirmation_step(client, ks_files, responder):
    incident = declare(responder, severity=Severity.SEV1)
    client.force_login(responder)
    form = client.get(ACTIVATE, {"incident": incident.pk, "reason": "exchange_error"})
    assert form.status_code == 200 and form.context["form"]["reason"].value() == "exchange_error"
    data = {"reason": "exchange_error", "message": "Binance down", "incident": incident.pk}
    confirm = client.post(ACTIVATE, data)
    assert confirm.status_code == 200 and "Yes, halt trading now" in confirm.content.decode()
    assert "state=inactive" in ks_files.read() and activations() == 0
    done = client.post(ACTIVATE, {**data, "confirm": "yes"})
    assert done.status_code == 302 and done.url == reverse("incidents:detail", args=[incident.pk])
    assert (
        "state=active\nreason=exchange_error\nmessage=Binance down (operator: responder)\n" in ks_files.read()
    )
    assert activations() == 1
    page = client.get(done.url).content.decode()
    assert "TRADING HALTED" in page and "Halted trading on Production" in page


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("reason", "pager", "Select a valid choice"),
        ("message", "halt\nstate=inactive", "line break or control character"),
        ("message", "x" * 501, "at most 500 characters"),
        ("incident", "999999", "Select a valid choice"),
    ],
)
def test_tampered_or_bad_fields_are_form_errors_and_change_nothing(
    client, ks_files, responder, field, value, error
):
    client.force_login(responder)
    data = {"reason": "manual", "message": "ok", "incident": "", "confirm": "yes", field: value}
    response = client.post(ACTIVATE, data)
    assert response.status_code == 422
    assert error in response.content.decode()
    assert "state=inactive" in ks_files.read() and activations() == 0


def test_an_incident_the_user_cannot_see_is_refused(client, ks_files):
    hidden = declare(make_user(role="responder"))
    user = make_user()  # no role, so no incident is visible; only the halt permission
    user.user_permissions.add(Permission.objects.get(codename="activate_killswitch"))
    client.force_login(user)
    response = client.post(ACTIVATE, {"reason": "manual", "incident": hidden.pk, "confirm": "yes"})
    assert response.status_code == 422 and activations() == 0


def test_a_broken_backend_shows_an_error_and_records_nothing(client, ks_files, responder):
    ks_files.production.unlink()
    ks_files.production.mkdir()
    client.force_login(responder)
    response = client.post(ACTIVATE, {"reason": "manual", "confirm": "yes"})
    assert response.status_code == 502
    assert "Nothing was recorded as done" in response.content.decode()
    assert activations() == 0


def test_banner_shows_unevaluable_differently(client, ks_files, viewer):
    ks_files.production.write_text("state=ACTIVE\n")
    services.killswitch_reconcile(target="production")
    client.force_login(viewer)
    body = client.get(reverse("killswitch:banner")).content.decode()
    assert "ks-unevaluable" in body and "KILL SWITCH UNEVALUABLE" in body and "TRADING HALTED" not in body


def test_index_reads_live_state_and_offers_what_the_role_allows(client, ks_files, responder, lead):
    client.force_login(responder)
    body = client.get(reverse("killswitch:index")).content.decode()
    assert 'data-testid="halt-production"' in body and "request-resume" not in body
    services.killswitch_activate(target="production", actor=responder, reason="manual", message="x")
    client.force_login(lead)
    body = client.get(reverse("killswitch:index")).content.decode()
    assert 'data-testid="resume-production"' in body


def test_approve_view_checks_the_password_when_login_is_old(client, ks_files, responder, lead):
    from datetime import timedelta

    from django.utils import timezone

    services.killswitch_activate(target="production", actor=responder, reason="manual", message="x")
    request = services.killswitch_request_resume(
        target="production", actor=lead, justification="Root cause fixed; all nine services healthy"
    )
    approver = make_user(role="lead")
    client.force_login(approver)
    type(approver).objects.filter(pk=approver.pk).update(last_login=timezone.now() - timedelta(minutes=10))
    url = reverse("killswitch:approve", args=[request.pk])
    client.post(url, {})
    assert "state=active" in ks_files.read()
    client.post(url, {"password": "wrong"})
    assert "state=active" in ks_files.read()
    from tests.incidents.factories import PASSWORD

    response = client.post(url, {"password": PASSWORD})
    assert response.status_code == 302 and "state=inactive" in ks_files.read()


def test_csv_export_escapes_formulas(client, ks_files, responder, lead):
    services.killswitch_activate(
        target="production", actor=responder, reason="manual", message="=HYPERLINK(1)"
    )
    client.force_login(lead)
    response = client.get(reverse("killswitch:audit"), {"format": "csv", "action": "activated"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:5] == ["seq", "created_at", "actor_name", "actor_role", "action"]
    reason = rows[0].index("reason")
    assert rows[1][reason] == "manual: =HYPERLINK(1)"  # the formula is not at the start: unchanged
    assert (
        escape_formula("=1+1") == "'=1+1" and escape_formula("+1") == "'+1" and escape_formula("@x") == "'@x"
    )
    assert escape_formula("-2") == "'-2" and escape_formula("\tx") == "'\tx" and escape_formula("ok") == "ok"


def test_csv_export_marks_the_drill_targets_records_drill(client, ks_files, responder, lead):
    services.killswitch_activate(target="production", actor=responder, reason="manual", message="real")
    services.killswitch_activate(target="drill", actor=lead, reason="manual", message="practice")
    client.force_login(lead)
    response = client.get(reverse("killswitch:audit"), {"format": "csv", "action": "activated"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {(r["target"], r["drill"]) for r in rows} == {("production", ""), ("drill", "DRILL")}


def test_audit_page_filters(client, ks_files, responder, lead):
    services.killswitch_activate(target="production", actor=responder, reason="manual", message="x")
    services.killswitch_activate(target="drill", actor=lead, reason="manual", message="y")
    client.force_login(lead)
    page = client.get(reverse("killswitch:audit"), {"target": "drill", "action": "activated"}).context["page"]
    assert [r.actor_name for r in page] == ["lead"]
    page = client.get(reverse("killswitch:audit"), {"actor": "respond"}).context["page"]
    assert {r.action for r in page} == {Action.ACTIVATED}


def test_admin_audit_is_read_only_and_exports(client, ks_files, responder, admin_user):
    services.killswitch_activate(target="production", actor=responder, reason="manual", message="x")
    client.force_login(admin_user)
    changelist = reverse("admin:killswitch_auditrecord_changelist")
    assert client.get(changelist, {"action__exact": "activated"}).status_code == 200
    record = AuditRecord.objects.get(action=Action.ACTIVATED)
    assert (
        client.post(reverse("admin:killswitch_auditrecord_change", args=[record.pk]), {}).status_code == 403
    )
    response = client.post(changelist, {"action": "export_csv", "_selected_action": [record.pk]})
    assert b"".join(response.streaming_content).decode().count("\n") == 2
