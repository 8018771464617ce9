"""The kill switch without the web UI: the same services, rules and audit as the console."""

from __future__ import annotations

import getpass
import os
import pwd
import re
import socket
import sys
from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.http import HttpRequest

from console import reauth
from incidents.models import Incident
from killswitch import audit, services
from killswitch.backends import REASONS, BackendError, InvalidInput
from killswitch.targets import all_targets, production_target, target_for


def origin() -> str:
    """Who ran the command, as the operating system knows it: `--as` is not proven for a halt, so the
    audit and CDB's state file name the account and host too (and the sudo user behind root)."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = f"uid {os.getuid()}"
    if os.environ.get("SUDO_USER"):
        user += f" (sudo by {os.environ['SUDO_USER']})"
    return re.sub(r"[^\x20-\x7e]", "?", f"CLI, OS user {user} on {socket.gethostname()}")[:200]


class Command(BaseCommand):
    help = "Kill switch: status | activate | request-resume | approve | verify-audit"

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="Read every target now.")
        act = sub.add_parser("activate", help="Halt trading.")
        act.add_argument("--as", dest="user", required=True)
        act.add_argument(
            "--target",
            default=None,
            help="Default: the incident's target (a drill's is the drill target), else production.",
        )
        act.add_argument("--reason", choices=REASONS, default="manual")
        act.add_argument("--message", default="")
        act.add_argument("--incident", type=int)
        req = sub.add_parser(
            "request-resume",
            help="File a resume request for a second person to approve (asks for your password).",
        )
        req.add_argument("--as", dest="user", required=True)
        req.add_argument("--target", default=None)
        req.add_argument("--justification", required=True)
        req.add_argument("--incident", type=int)
        req.add_argument(
            "--password-stdin", action="store_true", help="Read the password from standard input."
        )
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
        except (
            InvalidInput,
            services.KillSwitchRefused,
            services.ResumeFailed,
            BackendError,
            PermissionDenied,
            ValueError,
        ) as exc:
            raise CommandError(str(exc)) from exc

    def _user(self, name: str) -> User:
        try:
            return User.objects.get(username=name, is_active=True)
        except User.DoesNotExist:
            raise CommandError(f"No active user {name!r}.") from None

    def _target(self, name: str | None, incident: Incident | None = None) -> str:
        if name:
            return name
        if incident is None:
            return production_target().name
        target = target_for(is_drill=incident.is_drill)
        if target is None:
            raise CommandError(
                f"{incident.reference} is a drill and no drill target is configured "
                "(KILLSWITCH_DRILL_TARGET)."
            )
        return target.name

    def _incident(self, pk: int | None) -> Incident | None:
        if not pk:
            return None
        try:
            return Incident.objects.get(pk=pk)
        except Incident.DoesNotExist:
            raise CommandError(f"There is no incident #{pk}.") from None

    def _status(self, options: dict[str, Any]) -> None:
        """Each target read now; for an unevaluable one the reason it cannot be judged, not the
        file's (possibly last good) message."""
        for target in all_targets().values():
            state = target.backend().read()
            self.stdout.write(f"{target.name:<12} {state.condition:<12} {state.summary}".rstrip())

    def _activate(self, options: dict[str, Any]) -> None:
        """Halt. Without the database the halt still happens (on `--as`'s word and the OS user), and
        its record waits in the spool."""
        try:
            incident = self._incident(options["incident"])
            outcome = services.killswitch_activate(
                target=self._target(options["target"], incident),
                actor=self._user(options["user"]),
                reason=options["reason"],
                message=options["message"],
                incident=incident,
                ip=None,
                origin=origin(),
            )
        except DatabaseError as exc:
            if options["incident"] and not options["target"]:
                raise CommandError(
                    "The database is unavailable, so whether the incident is a drill cannot be checked: "
                    "name the target with --target."
                ) from exc
            outcome = services.killswitch_activate_offline(
                target=options["target"] or production_target().name,
                actor_name=options["user"],
                reason=options["reason"],
                message=options["message"],
                incident_id=options["incident"],
                origin=origin(),
                why=f"database unavailable ({services.error_text(exc)})",
            )
        self.stdout.write(outcome.message)

    def _request_resume(self, options: dict[str, Any]) -> None:
        incident = self._incident(options["incident"])
        request = services.killswitch_request_resume(
            target=self._target(options["target"], incident),
            actor=self._prove(options, "request-resume", "nothing was filed"),
            justification=options["justification"],
            incident=incident,
        )
        self.stdout.write(f"Resume request #{request.pk} filed; expires {request.expires_at:%H:%M:%S} UTC.")

    def _approve(self, options: dict[str, Any]) -> None:
        user = self._prove(options, "approve", "nothing was approved")
        outcome = services.killswitch_approve_resume(
            request_id=options["request"], actor=user, reauthenticated=True
        )
        self.stdout.write(outcome.message)

    def _prove(self, options: dict[str, Any], subcommand: str, what: str) -> User:
        """`--as` names a person; their password proves it. It goes through the same authentication
        as a web login, so wrong passwords count toward (and are refused by) the account's lockout."""
        user = self._user(options["user"])
        name = user.get_username()
        password = (
            sys.stdin.readline().rstrip("\r\n")
            if options["password_stdin"]
            else getpass.getpass(f"Password for {name}: ")
        )
        if not password:
            raise CommandError(f"No password for {name}: {what}.")
        request = _cli_request(subcommand)
        authed = authenticate(request, username=name, password=password)
        if getattr(request, "axes_locked_out", False):
            raise CommandError(f"{reauth.lockout_text()} {what[0].upper()}{what[1:]}.")
        if authed is None or authed.pk != user.pk:
            raise CommandError(f"Wrong password for {name}; {what}.")
        return user

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


def _cli_request(subcommand: str) -> HttpRequest:
    """What the login throttle sees of a command-line attempt: no network address (CLI attempts share
    one), the command and the operating-system account that ran it."""
    request = HttpRequest()
    request.method = "POST"
    request.path = request.path_info = request.META["PATH_INFO"] = f"manage.py killswitch {subcommand}"
    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no login name in a bare container: the host still says where
        who = f"?@{socket.gethostname()}"
    request.META["HTTP_USER_AGENT"] = f"manage.py ({who})"
    return request
