"""The kill switch without the web UI: the same services, rules and audit as the console."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.models import Incident
from killswitch import audit, services
from killswitch.backends import REASONS, BackendError, InvalidInput
from killswitch.targets import all_targets


class Command(BaseCommand):
    help = "Kill switch: status | activate | request-resume | approve | verify-audit"

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="Read every target now.")
        act = sub.add_parser("activate", help="Halt trading.")
        act.add_argument("--as", dest="user", required=True)
        act.add_argument("--target", default=None, help="Default: the production target.")
        act.add_argument("--reason", choices=REASONS, default="manual")
        act.add_argument("--message", default="")
        act.add_argument("--incident", type=int)
        req = sub.add_parser("request-resume", help="File a resume request for a second person to approve.")
        req.add_argument("--as", dest="user", required=True)
        req.add_argument("--target", default=None)
        req.add_argument("--justification", required=True)
        req.add_argument("--incident", type=int)
        app = sub.add_parser("approve", help="Approve a resume request (asks for your password).")
        app.add_argument("--as", dest="user", required=True)
        app.add_argument("request", type=int)
        app.add_argument(
            "--password-stdin", action="store_true", help="Read the password from standard input."
        )
        sub.add_parser("verify-audit", help="Recompute the audit chain; exit 1 at the first break.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"].replace("-", "_"))(options)
        except (InvalidInput, services.KillSwitchRefused, BackendError, PermissionDenied, ValueError) as exc:
            raise CommandError(str(exc)) from exc

    def _user(self, name: str) -> User:
        try:
            return User.objects.get(username=name, is_active=True)
        except User.DoesNotExist:
            raise CommandError(f"No active user {name!r}.") from None

    def _target(self, name: str | None) -> str:
        return name or next(iter(all_targets()))

    def _incident(self, pk: int | None) -> Incident | None:
        return Incident.objects.get(pk=pk) if pk else None

    def _status(self, options: dict[str, Any]) -> None:
        """Each target read now; for an unevaluable one the reason it cannot be judged, not the
        file's (possibly last good) message."""
        for target in all_targets().values():
            state = target.backend().read()
            self.stdout.write(f"{target.name:<12} {state.condition:<12} {state.summary}".rstrip())

    def _activate(self, options: dict[str, Any]) -> None:
        outcome = services.killswitch_activate(
            target=self._target(options["target"]),
            actor=self._user(options["user"]),
            reason=options["reason"],
            message=options["message"],
            incident=self._incident(options["incident"]),
            ip=None,
        )
        self.stdout.write(outcome.message)

    def _request_resume(self, options: dict[str, Any]) -> None:
        request = services.killswitch_request_resume(
            target=self._target(options["target"]),
            actor=self._user(options["user"]),
            justification=options["justification"],
            incident=self._incident(options["incident"]),
        )
        self.stdout.write(f"Resume request #{request.pk} filed; expires {request.expires_at:%H:%M:%S} UTC.")

    def _approve(self, options: dict[str, Any]) -> None:
        user = self._user(options["user"])
        password = (
            sys.stdin.readline().rstrip("\n") if options["password_stdin"] else getpass.getpass("Password: ")
        )
        if not user.check_password(password):
            raise CommandError("Wrong password; nothing was approved.")
        outcome = services.killswitch_approve_resume(
            request_id=options["request"], actor=user, reauthenticated=True
        )
        self.stdout.write(outcome.message)

    def _verify_audit(self, options: dict[str, Any]) -> None:
        report = audit.verify_report()
        if not report.anchor:
            self.stderr.write(
                "No audit anchor configured (AUDIT_ANCHOR_FILE): an emptied table cannot be told."
            )
        if report.findings:
            for finding in report.findings:
                self.stderr.write(str(finding))
            first = report.findings[0]
            where = f"at record #{first.seq}" if first.seq else "(anchor)"
            raise CommandError(f"Audit chain broken {where} ({report.checked} records checked).")
        anchored = f", anchored up to #{report.anchored} in {report.anchor}" if report.anchor else ""
        self.stdout.write(f"Audit chain intact: {report.checked} records{anchored}.")
