from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from console.roles import ADMIN, ROLES
from incidents import services
from incidents.models import Incident, IncidentType, Severity, Status

CREDENTIALS_FILE = settings.VAR_DIR / "demo-credentials.txt"


class Command(BaseCommand):
    """One demo account per role, and never one person with both halves of the four eyes: no demo
    account is a superuser or may manage accounts (whoever can create or reset another account can act
    as a second person), each holds exactly one role, so a demo resume takes two accounts (demo-lead
    requests, demo-admin approves)."""

    help = "Create one demo user per role (printing new credentials once) and a few demo incidents."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-incidents", action="store_true", help="Users only.")
        parser.add_argument(
            "--force", action="store_true", help="Run even with DEBUG off (a demo on a shared server)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "DEBUG is off, so this looks like production: seed_demo creates accounts with known "
                "roles and a file of their passwords. Run it with --force if this really is a demo."
            )
        created = self._users()
        self._check_users()
        if created:
            lines = [f"  {role:<10} {name:<12} {password}" for role, name, password in created]
            text = "Demo users (role, username, password):\n" + "\n".join(lines)
            CREDENTIALS_FILE.parent.mkdir(parents=True, exist_ok=True)
            CREDENTIALS_FILE.write_text(text + "\n", encoding="utf-8")
            CREDENTIALS_FILE.chmod(0o600)
            self.stdout.write(
                self.style.WARNING("\n" + text + f"\n  (also in {CREDENTIALS_FILE}; shown only now)\n")
            )
        else:
            self.stdout.write(f"Demo users exist; their passwords are in {CREDENTIALS_FILE}.")
        self._rota()
        self._drills()
        self._playbook_proposal()
        if not options["no_incidents"] and not Incident.objects.exists():
            self._incidents()
        self._killswitch_files()

    def _rota(self) -> None:
        """A demo rota, so that the escalation chain of a demo incident pages somebody (in the
        console inbox: the demo configures no chat or email): the responder as on-call engineer,
        the lead as tech lead, the executive as executive, handing over every Monday."""
        from datetime import time

        from oncall import services as oncall
        from oncall.models import Duty, Rotation

        User = get_user_model()
        for duty, username in (
            (Duty.ONCALL_ENGINEER, "demo-responder"),
            (Duty.TECH_LEAD, "demo-lead"),
            (Duty.EXECUTIVE, "demo-executive"),
        ):
            if Rotation.objects.filter(duty=duty).exists():
                continue
            oncall.rotation_save(
                rotation=None,
                name=f"Demo {Duty(duty).label.lower()}",
                duty=duty,
                time_zone=settings.TIME_ZONE,
                effective_from=timezone.localdate() - timedelta(days=7),
                handoff_time=time(9, 0),
                handoff_weekday=0,
                shift_hours=168,
                members=[User.objects.get(username=username)],
            )

    def _drills(self) -> None:
        """The drill programme a year ahead, the lead owning it with the responder taking part, and
        one past kill-switch test completed and reviewed (so the table has a last run)."""
        from drills import services as drills
        from drills.models import Drill, DrillType, Status

        User = get_user_model()
        lead, responder = User.objects.get(username="demo-lead"), User.objects.get(username="demo-responder")
        for kind in DrillType.objects.filter(owner__isnull=True):
            kind.owner = lead
            kind.save(update_fields=["owner"])
            kind.participants.add(lead, responder)
        made = drills.drills_generate()
        kind = DrillType.objects.get(slug="kill-switch-test")
        if not Drill.objects.filter(drill_type=kind, status=Status.COMPLETED).exists():
            at = (timezone.now() - timedelta(days=20)).replace(hour=10, minute=0, second=0, microsecond=0)
            Drill.objects.create(
                drill_type=kind,
                original_at=at,
                scheduled_for=at,
                status=Status.COMPLETED,
                started_at=at,
                completed_at=at + timedelta(hours=1),
                reviewed_by=lead,
                measured={"acknowledge": 140, "halt": 410, "confirmed_halt": 412, "approved_resume": 1950},
                findings="Halt within target; the resume approval waited for a second lead (1950 s, target "
                "1800 s).",
                playbook_proposal="Name a standing second approver for kill-switch resumes during drills.",
            )
        self.stdout.write(f"Drills: {made} new occurrences generated.")

    def _playbook_proposal(self) -> None:
        """The past kill-switch test's lesson as a playbook proposal in review: written by the
        responder (a runbook step for the kill-switch type), reviewed by the admin, to be approved by
        the lead. Once: a re-run finds it (or any proposal) and adds nothing."""
        from drills.models import Drill, Status
        from incidents import playbook
        from playbookreview import selectors as proposals
        from playbookreview import services as proposing
        from playbookreview.models import PlaybookProposal

        drill = Drill.objects.filter(drill_type__slug="kill-switch-test", status=Status.COMPLETED).first()
        current = playbook.current_version()
        if drill is None or current is None or PlaybookProposal.objects.exists():
            return
        User = get_user_model()
        responder = User.objects.get(username="demo-responder")
        lead, admin = User.objects.get(username="demo-lead"), User.objects.get(username="demo-admin")
        document = playbook.parse_playbook_yaml(current.yaml)
        kind = next((t for t in document["incident_types"] if t["slug"] == "kill-switch-activated"), None)
        if kind is None:
            return
        step = "Name the second approver of the resume before deactivating (drills included)"
        steps = list(kind.get("runbook_steps", []))
        steps.insert(max(0, len(steps) - 2), step)
        kind["runbook_steps"] = steps
        initial = proposals.initial_from_drill(drill)
        with transaction.atomic():
            proposal = proposing.proposal_create(
                actor=responder,
                title="Kill-switch runbook: name the resume's second approver up front",
                reason=initial["reason"],
                yaml_text=playbook.playbook_yaml(document),
                drill=drill,
            )
            proposing.proposal_assign(proposal=proposal, actor=lead, reviewers=[admin], approver=lead)
            proposing.proposal_submit(proposal=proposal, actor=responder)
        self.stdout.write(f"Playbook proposal #{proposal.pk} in review (approver demo-lead).")

    def _killswitch_files(self) -> None:
        """Demo targets are local state files: start them as CDB's deactivate would leave them."""
        from killswitch.backends import FileBackend
        from killswitch.targets import all_targets

        for target in all_targets().values():
            backend = target.backend()
            if isinstance(backend, FileBackend) and not backend.path.exists():
                backend.path.parent.mkdir(parents=True, exist_ok=True)
                backend.deactivate(operator="demo-setup", justification="initial state for the demo")
                self.stdout.write(f"Kill-switch demo file {backend.path}: trading.")

    def _users(self) -> list[tuple[str, str, str]]:
        User = get_user_model()
        created = []
        for role in ROLES:
            name = f"demo-{role}"
            if User.objects.filter(username=name).exists():
                continue
            password = secrets.token_urlsafe(12)
            with transaction.atomic():
                user = User.objects.create_user(username=name, password=password, is_staff=role == ADMIN)
                user.groups.add(Group.objects.get(name=role))
            created.append((role, name, password))
        return created

    def _check_users(self) -> None:
        """Refuse (not repair) a demo account someone gave more: a superuser, a second role, or a
        permission of its own (such as managing accounts)."""
        User = get_user_model()
        for user in User.objects.filter(username__in=[f"demo-{role}" for role in ROLES]):
            roles = sorted(user.groups.values_list("name", flat=True))
            if user.is_superuser:
                raise CommandError(f"{user.username} is a superuser: a demo account must not be one.")
            if roles != [user.username.removeprefix("demo-")] or user.user_permissions.exists():
                raise CommandError(
                    f"{user.username} holds {', '.join(roles) or 'no role'} and "
                    f"{user.user_permissions.count()} permissions of its own: a demo account holds "
                    "exactly its one role."
                )

    def _action_items(self, incident: Incident, responder: Any, lead: Any) -> None:
        """Follow-ups of the closed demo incident: one overdue (the home page's notice), one open."""
        from actions.services import action_item_create

        today = timezone.localdate()
        action_item_create(
            incident=incident,
            actor=lead,
            title="Alert when a Grafana datasource stops answering",
            owner=responder,
            due=today - timedelta(days=2),
        )
        action_item_create(
            incident=incident,
            actor=lead,
            title="Document the dashboard restart in the runbook",
            owner=lead,
            due=today + timedelta(days=12),
            tracker_url="https://tracker.example/CDB-101",
        )

    def _incidents(self) -> None:
        User = get_user_model()
        responder = User.objects.get(username="demo-responder")
        lead = User.objects.get(username="demo-lead")
        types = {t.slug: t for t in IncidentType.objects.all()}
        now = timezone.now()
        crash = services.incident_declare(
            actor=responder,
            title="cdb_execution restarting every 40 s",
            incident_type=types["service-crash-loop"],
            severity=Severity.SEV2,
            affected_components=["cdb_execution"],
            detected_at=now - timedelta(minutes=25),
            description="Docker health check fails after the 0.1.0 deploy; orders queue up in Redis.",
        )
        services.incident_acknowledge(incident=crash, actor=responder)
        services.incident_assign_commander(incident=crash, actor=lead, commander=lead)
        services.incident_change_status(incident=crash, actor=lead, to_status=Status.INVESTIGATING)
        services.incident_add_note(
            incident=crash, actor=responder, text="OOM kills in `docker stats`; limit is 256 MiB."
        )
        services.incident_declare(
            actor=responder,
            title="Market data 8 s behind exchange",
            incident_type=types["other"],
            severity=Severity.SEV3,
            affected_components=["cdb_market", "cdb_ws"],
            detected_at=now - timedelta(minutes=3),
        )
        old = services.incident_declare(
            actor=responder,
            title="Grafana dashboard not loading",
            incident_type=types["other"],
            severity=Severity.SEV4,
            detected_at=now - timedelta(days=2),
        )
        services.incident_acknowledge(incident=old, actor=responder)
        services.incident_change_status(incident=old, actor=responder, to_status=Status.RESOLVED)
        services.incident_change_status(incident=old, actor=responder, to_status=Status.CLOSED)
        self._action_items(old, responder, lead)
        self._postmortem(responder, lead, types["exchange-api-failure"])
        refs = ", ".join(f"INC-{pk}" for pk in Incident.objects.order_by("pk").values_list("pk", flat=True))
        self.stdout.write(f"Demo incidents created: {refs}.")

    def _postmortem(self, responder: Any, lead: Any, incident_type: IncidentType) -> None:
        """A resolved SEV-1 whose post-mortem (created by the resolution) is in review: written by the
        responder, reviewed by the executive, to be approved by the lead."""
        from postmortems import review
        from postmortems import services as postmortems

        User = get_user_model()
        now = timezone.now()
        incident = services.incident_declare(
            actor=responder,
            title="Binance API returning 429 for 12 minutes",
            incident_type=incident_type,
            severity=Severity.SEV1,
            affected_components=["cdb_market", "cdb_execution"],
            detected_at=now - timedelta(hours=5),
        )
        services.incident_acknowledge(incident=incident, actor=responder)
        services.incident_assign_commander(incident=incident, actor=responder, commander=responder)
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.MITIGATING)
        services.incident_change_status(
            incident=incident,
            actor=lead,
            to_status=Status.RESOLVED,
            override_reason="Demo: exchange recovered, verified by hand",
        )
        pm = incident.postmortem
        body = (
            pm.revisions.get(number=1)
            .body.replace(
                "[1-2 sentence summary]",
                "A burst of order retries exceeded Binance's request weight limit; trading was halted until "
                "the rate limiter was fixed.",
            )
            .replace("[Detailed explanation]", "The retry loop in cdb_execution ignored `Retry-After`.")
        )
        postmortems.revision_save(
            postmortem=pm, actor=responder, body=body, base=1, note="Summary, root cause"
        )
        review.review_assign(
            document=pm, actor=lead, reviewers=[User.objects.get(username="demo-executive")], approver=lead
        )
        review.review_submit(document=pm, actor=responder)
