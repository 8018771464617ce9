"""Drills never touch production: an incident's kill-switch controls act on the target that matches it.

The targets here are deliberately not called "production" and "drill": the first configured target is
production by configuration, and the drill target is the second one or the one KILLSWITCH_DRILL_TARGET
names, whatever they are called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from incidents.models import Incident, Severity
from killswitch import services
from killswitch.backends import FileBackend
from killswitch.models import Action, AuditRecord
from killswitch.targets import parse_targets
from tests.incidents.factories import declare

pytestmark = pytest.mark.django_db
JUST = "Drill finished; every service healthy and the exchange answers"


@pytest.fixture
def targets(settings: Any, tmp_path: Path) -> dict[str, Path]:
    """Three trading targets: `live` (first: production), `paper`, and `rehearsal` (the drill target)."""
    paths = {name: tmp_path / name / ".cdb_kill_switch.state" for name in ("live", "paper", "rehearsal")}
    for path in paths.values():
        path.parent.mkdir()
        FileBackend(path).deactivate(operator="setup", justification="trading at the start of the test")
    settings.KILLSWITCH_TARGETS = ";".join(f"{name}=file:{path}" for name, path in paths.items())
    settings.KILLSWITCH_DRILL_TARGET = "rehearsal"
    settings.KILLSWITCH_SPOOL = str(tmp_path / "spool.jsonl")
    return paths


@pytest.fixture
def drill(responder: Any) -> Incident:
    return declare(responder, severity=Severity.SEV1, title="Monthly kill-switch drill", is_drill=True)


@pytest.fixture
def real(responder: Any) -> Incident:
    return declare(responder, severity=Severity.SEV1, title="Binance answers 5xx")


def halted(path: Path) -> bool:
    return "state=active" in path.read_text()


class TestTheIncidentPanel:
    def test_a_drill_incident_offers_the_drill_target_only(self, client, targets, drill, lead):
        client.force_login(lead)
        page = client.get(reverse("incidents:detail", args=[drill.pk])).content.decode()
        assert reverse("killswitch:activate", args=["rehearsal"]) in page
        assert reverse("killswitch:request_resume", args=["rehearsal"]) in page
        assert reverse("killswitch:activate", args=["live"]) not in page
        assert "/killswitch/production/" not in page

    def test_a_real_incident_offers_the_production_target(self, client, targets, real, lead):
        client.force_login(lead)
        page = client.get(reverse("incidents:detail", args=[real.pk])).content.decode()
        assert reverse("killswitch:activate", args=["live"]) in page
        assert reverse("killswitch:activate", args=["rehearsal"]) not in page

    def test_without_a_drill_target_a_drill_offers_no_halt(self, client, settings, targets, drill, lead):
        settings.KILLSWITCH_TARGETS = f"live=file:{targets['live']}"
        settings.KILLSWITCH_DRILL_TARGET = ""
        client.force_login(lead)
        page = client.get(reverse("incidents:detail", args=[drill.pk])).content.decode()
        assert "/killswitch/live/" not in page and "no drill target" in page


class TestTheServiceRefusesAMismatch:
    def test_a_drill_incident_never_halts_production(self, targets, responder, drill):
        with pytest.raises(services.KillSwitchRefused, match="drill"):
            services.killswitch_activate(
                target="live", actor=responder, reason="manual", message="drill", incident=drill
            )
        assert not halted(targets["live"])
        assert not AuditRecord.objects.filter(action=Action.ACTIVATED).exists()

    def test_a_real_incident_never_halts_the_drill_target(self, targets, responder, real):
        with pytest.raises(services.KillSwitchRefused, match="production"):
            services.killswitch_activate(
                target="rehearsal", actor=responder, reason="manual", message="x", incident=real
            )
        assert not halted(targets["rehearsal"])

    def test_a_drill_halts_the_drill_target_and_joins_only_the_drill(self, targets, responder, drill):
        outcome = services.killswitch_activate(
            target="rehearsal", actor=responder, reason="manual", message="drill", incident=drill
        )
        assert outcome.changed and halted(targets["rehearsal"]) and not halted(targets["live"])
        assert "Halted trading on Rehearsal" in drill.events.order_by("-id").first().message

    def test_a_resume_request_is_refused_for_a_mismatched_incident(self, targets, responder, lead, drill):
        services.killswitch_activate(target="live", actor=responder, reason="manual", message="real")
        with pytest.raises(services.KillSwitchRefused, match="drill"):
            services.killswitch_request_resume(target="live", actor=lead, justification=JUST, incident=drill)


class TestTheForms:
    def test_the_production_form_offers_no_drill_incident(self, client, targets, responder, drill, real):
        client.force_login(responder)
        form = client.get(reverse("killswitch:activate", args=["live"])).context["form"]
        assert list(form.fields["incident"].queryset) == [real]
        form = client.get(reverse("killswitch:activate", args=["rehearsal"])).context["form"]
        assert list(form.fields["incident"].queryset) == [drill]

    def test_a_drill_incident_posted_to_production_changes_nothing(self, client, targets, responder, drill):
        client.force_login(responder)
        response = client.post(
            reverse("killswitch:activate", args=["live"]),
            {"reason": "manual", "incident": drill.pk, "confirm": "yes"},
        )
        assert response.status_code == 422 and not halted(targets["live"])


class TestTheCommandLine:
    def test_a_drill_incident_halts_the_drill_target_by_default(self, targets, responder, drill):
        call_command("killswitch", "activate", "--as", responder.username, "--incident", str(drill.pk))
        assert halted(targets["rehearsal"]) and not halted(targets["live"])

    def test_a_drill_incident_on_production_is_refused(self, targets, responder, drill):
        with pytest.raises(CommandError, match="drill"):
            call_command(
                "killswitch", "activate", "--as", responder.username, "--incident", str(drill.pk),
                "--target", "live",
            )  # fmt: skip
        assert not halted(targets["live"])


class TestConfiguration:
    def test_the_second_target_is_the_drill_target_unless_one_is_named(self):
        targets = parse_targets("a=file:/x;b=file:/y;c=file:/z")
        assert [(t.production, t.drill) for t in targets.values()] == [
            (True, False),
            (False, True),
            (False, False),
        ]
        targets = parse_targets("a=file:/x;b=file:/y;c=file:/z", drill="c")
        assert [(t.production, t.drill) for t in targets.values()] == [
            (True, False),
            (False, False),
            (False, True),
        ]
        assert not any(t.drill for t in parse_targets("a=file:/x").values())

    @pytest.mark.parametrize("name", ["a", "nope"])
    def test_the_drill_target_must_be_another_configured_target(self, name):
        with pytest.raises(ValueError, match="KILLSWITCH_DRILL_TARGET"):
            parse_targets("a=file:/x;b=file:/y", drill=name)


def test_no_template_names_a_target():
    """Targets come from configuration: a template that names one would act on the wrong stack."""
    root = Path(__file__).resolve().parents[2] / "templates"
    for template in root.rglob("*.html"):
        text = template.read_text()
        for literal in ("'production'", '"production"', "'drill'", '"drill"'):
            assert literal not in text, f"{template.relative_to(root)} names a target: {literal}"


def test_a_drill_halt_never_joins_a_real_incident(targets, real, lead):
    """The drill target's halt seen by reconcile opens a drill incident, never the open real one."""
    from tests.killswitch.test_actions import cdb_halt

    services.killswitch_reconcile(target="rehearsal")
    cdb_halt(targets["rehearsal"])
    services.killswitch_activate(target="rehearsal", actor=lead, reason="manual", message="drill")
    joined = Incident.objects.filter(severity=Severity.SEV1).exclude(pk=real.pk)
    assert [i.is_drill for i in joined] == [True]
    assert not real.events.filter(message__icontains="Rehearsal").exists()
