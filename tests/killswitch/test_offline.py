"""Halting does not need PostgreSQL.

The acceptance test runs the console for real: gunicorn in a subprocess, its database reached
through a TCP proxy the test cuts (the shared PostgreSQL server itself is never touched). A responder
logs in, the database goes away, every page but the kill switch answers a plain 503, the responder
halts production from the web and a lead halts the drill target from the CLI; the database comes
back, reconcile records both halts with their real actors and opens an incident for each.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import time_machine
from django.conf import settings as django_settings
from django.core import signing
from django.db import connection
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from incidents.models import Incident, Severity
from killswitch import audit, offline, services, spool
from killswitch.models import Action, AuditRecord, SpooledChange
from tests.incidents.factories import PASSWORD, make_user
from tests.tcpproxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
UNRECORDED = "the audit record could not be written and will be recorded when the database accepts writes"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    db = connection.settings_dict
    with TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)) as proxy:
        yield proxy


@pytest.fixture
def console_env(ks_files: Any, proxy: TcpProxy, settings: Any) -> dict[str, str]:
    """The environment of a production-like console whose database is behind the proxy."""
    db = connection.settings_dict
    env = os.environ.copy()
    env |= {
        "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
        "DB_CONNECT_TIMEOUT": "2",
        "DEBUG": "false",
        "SECRET_KEY": "offline-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "AUDIT_HMAC_KEY": settings.AUDIT_HMAC_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "KILLSWITCH_TARGETS": settings.KILLSWITCH_TARGETS,
        "KILLSWITCH_SPOOL": settings.KILLSWITCH_SPOOL,
        "LOG_LEVEL": "WARNING",
    }
    return env


@pytest.fixture
def console(console_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """gunicorn serving the console (one process, two threads) on a free port; yields its URL."""
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "gunicorn"),
                "config.wsgi:application",
                f"--bind=127.0.0.1:{port}",
                "--workers=1",
                "--worker-class=gthread",
                "--threads=2",
                "--no-control-socket",
            ],
            cwd=ROOT,
            env=console_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/login/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if os.environ.get("PYTEST_SHOW_GUNICORN"):
            print(log.read_text())


def server_user(username: str, role: str) -> Any:
    """A user the server can log in: tests hash with MD5, which the server does not accept."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    user = make_user(username=username, role=role)
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "offlinesalt", iterations=1000)
    user.save(update_fields=["password"])
    return user


def login(url: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=10)
    token = csrf_of(client.get("/login/").text)
    response = client.post(
        "/login/", data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302, response.text[:500]
    return client


def halt_through_the_web(client: httpx.Client, target: str, **data: str) -> httpx.Response:
    path = f"/killswitch/{target}/activate/"
    form = client.get(path)
    assert form.status_code == 200, form.text[:500]
    fields = {"reason": "manual", "message": "", **data, "csrfmiddlewaretoken": csrf_of(form.text)}
    confirm = client.post(path, data=fields)
    assert confirm.status_code == 200 and "Yes, halt trading now" in confirm.text, confirm.text[:500]
    return client.post(path, data={**fields, "csrfmiddlewaretoken": csrf_of(confirm.text), "confirm": "yes"})


@pytest.mark.django_db(transaction=True)
def test_halting_works_without_the_database_and_is_recorded_when_it_returns(
    ks_files, proxy, console, console_env
):
    responder = server_user("responder", "responder")
    server_user("lead", "lead")
    server_user("viewer", "viewer")
    web = login(console, "responder")
    assert "cdb_may_halt" in web.cookies
    watcher = login(console, "viewer")
    assert "cdb_may_halt" not in watcher.cookies

    proxy.cut()

    # Every page but the kill switch: a plain 503, not a 500.
    for path in ("/", "/detection/", "/killswitch/audit/", "/admin/"):
        page = web.get(path)
        assert page.status_code == 503, (path, page.status_code, page.text[:300])
        assert page.headers["content-type"].startswith("text/plain")
        assert "database is unavailable" in page.text and "/killswitch/" in page.text
    board = web.get("/killswitch/")
    assert board.status_code == 200
    assert "DATABASE UNAVAILABLE" in board.text and "You are <strong>responder</strong>" in board.text
    assert 'data-testid="halt-production"' in board.text

    # Someone without the cookie (here: without the halt permission) cannot halt.
    refused = watcher.post(
        "/killswitch/drill/activate/", data={"reason": "manual", "confirm": "yes", "csrfmiddlewaretoken": "x"}
    )
    assert refused.status_code == 403 and "state=inactive" in ks_files.read("drill")

    done = halt_through_the_web(web, "production", reason="exchange_error", message="Binance 5xx, DB down")
    assert done.status_code == 200, done.text[:500]
    assert f"Trading is halted on Production; {UNRECORDED}." in done.text
    assert (
        "state=active\nreason=exchange_error\nmessage=Binance 5xx, DB down (operator: responder via web "
        "without the database (signed halt cookie))\n"
    ) in ks_files.read()

    cli = subprocess.run(
        [sys.executable, "manage.py", "killswitch", "activate", "--as", "lead", "--target", "drill",
         "--message", "CLI during the outage"],
        cwd=ROOT, env=console_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert f"Trading is halted on Drill; {UNRECORDED}." in cli.stdout
    assert "(operator: lead via CLI, OS user " in ks_files.read("drill")
    assert len(spool.pending()) == 2
    assert not AuditRecord.objects.filter(action=Action.ACTIVATED).exists()

    proxy.restore()
    services.killswitch_reconcile_all()

    web_halt, cli_halt = AuditRecord.objects.filter(action=Action.ACTIVATED).order_by("seq")
    assert (web_halt.actor, web_halt.target, web_halt.ip_address) == (responder, "production", "127.0.0.1")
    assert web_halt.reason.startswith("exchange_error: Binance 5xx, DB down (via web without the database")
    assert "recorded late: database unavailable" in web_halt.reason
    assert (cli_halt.actor_name, cli_halt.target) == ("lead", "drill")
    assert "OS user" in cli_halt.reason
    assert not AuditRecord.objects.filter(action=Action.EXTERNAL_CHANGE).exists()
    real = Incident.objects.get(severity=Severity.SEV1, is_drill=False)
    drill = Incident.objects.get(severity=Severity.SEV1, is_drill=True)
    assert (web_halt.incident_id, cli_halt.incident_id) == (real.pk, drill.pk)
    assert (
        "Halted trading on Production (exchange_error), recorded late"
        in real.events.order_by("-id").first().message
    )
    assert spool.pending() == []
    assert audit.verify()[1] == []
    # Reconcile again: nothing new, nothing twice.
    services.killswitch_reconcile_all()
    assert AuditRecord.objects.filter(action=Action.ACTIVATED).count() == 2
    # The console serves its pages again.
    assert web.get("/").status_code == 200


# --- The "may halt" cookie ---------------------------------------------------------------------------


@pytest.mark.django_db
class TestTheMayHaltCookie:
    def test_login_gives_it_to_those_who_may_halt_and_logout_takes_it(self, client, ks_files):
        make_user(username="responder", role="responder")
        response = client.post(reverse("login"), {"username": "responder", "password": PASSWORD})
        cookie = response.cookies[offline.COOKIE]
        assert cookie["path"] == "/killswitch/" and cookie["httponly"] and cookie["samesite"] == "Lax"
        assert cookie["max-age"] == django_settings.KILLSWITCH_OFFLINE_HALT_SECONDS
        # A browser sends a /killswitch/ cookie to /killswitch/ only, never to the logout URL.
        del client.cookies[offline.COOKIE]
        response = client.post(reverse("logout"))
        assert response.cookies[offline.COOKIE]["max-age"] == 0
        assert response.cookies[offline.COOKIE]["path"] == "/killswitch/"

    def test_a_viewer_gets_none(self, client, ks_files):
        make_user(username="viewer", role="viewer")
        response = client.post(reverse("login"), {"username": "viewer", "password": PASSWORD})
        # None given; one left by someone else on this browser is deleted.
        assert response.status_code == 302 and response.cookies[offline.COOKIE]["max-age"] == 0

    @pytest.mark.parametrize("forgery", ["other key", "other salt", "garbage", "expired"])
    def test_a_forged_or_expired_cookie_halts_nothing(self, ks_files, forgery, settings):
        user = make_user(username="responder", role="responder")
        value = {
            "other key": signing.dumps({"id": user.pk, "name": "responder"}, key="x" * 50, salt=offline.SALT),
            "other salt": signing.dumps({"id": user.pk, "name": "responder"}, salt="sessions"),
            "garbage": "responder",
            "expired": offline.issue(user),
        }[forgery]
        later = timezone.now() + timedelta(seconds=settings.KILLSWITCH_OFFLINE_HALT_SECONDS + 1)
        with time_machine.travel(later if forgery == "expired" else timezone.now()):
            request = RequestFactory().post(
                "/killswitch/production/activate/", {"reason": "manual", "confirm": "yes"}
            )
            request.COOKIES[offline.COOKIE] = value
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
            response = offline.activate(request, "production")
        assert response.status_code == 403
        assert "state=inactive" in ks_files.read()
        assert spool.pending() == []

    def test_a_valid_cookie_halts_and_spools(self, ks_files):
        user = make_user(username="responder", role="responder")
        request = RequestFactory().post(
            "/killswitch/production/activate/", {"reason": "risk_limit", "confirm": "yes"}
        )
        request.COOKIES[offline.COOKIE] = offline.issue(user)
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        response = offline.activate(request, "production")
        assert response.status_code == 200 and UNRECORDED in response.content.decode()
        assert "state=active\nreason=risk_limit" in ks_files.read()
        [entry] = spool.pending()
        assert (entry["actor"], entry["actor_id"], entry["action"]) == ("responder", user.pk, "activated")

    def test_the_offline_halt_still_needs_the_csrf_token(self, ks_files):
        user = make_user(username="responder", role="responder")
        request = RequestFactory().post(
            "/killswitch/production/activate/", {"reason": "manual", "confirm": "yes"}
        )
        request.COOKIES[offline.COOKIE] = offline.issue(user)
        assert offline.activate(request, "production").status_code == 403
        assert "state=inactive" in ks_files.read()


# --- The spool ------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestTheSpool:
    def _halt_offline(self, who: str = "responder") -> dict[str, Any]:
        services.killswitch_activate_offline(
            target="production", actor_name=who, reason="manual", message="spooled", origin="a test"
        )
        return spool.pending()[-1]

    def test_an_entry_is_recorded_once_even_if_the_spool_was_not_emptied(self, ks_files, responder):
        entry = self._halt_offline()
        assert services.spooled_changes_record() == 1
        # As if the process died after the commit, before the spool was rewritten.
        spool.append(entry)
        assert services.spooled_changes_record() == 0
        assert AuditRecord.objects.filter(action=Action.ACTIVATED).count() == 1
        assert SpooledChange.objects.count() == 1 and spool.pending() == []

    def test_a_damaged_line_is_kept_aside_and_the_others_recorded(self, ks_files, responder):
        self._halt_offline()
        with open(spool.path(), "a") as handle:
            handle.write('{"id": "cut short by a cra\n')
        assert services.spooled_changes_record() == 1
        bad = Path(str(spool.path()) + ".bad").read_text()
        assert "cut short" in bad

    def test_an_actor_without_an_account_is_recorded_by_name(self, ks_files):
        self._halt_offline(who="ghost")
        services.spooled_changes_record()
        record = AuditRecord.objects.get(action=Action.ACTIVATED)
        assert (record.actor, record.actor_name) == (None, "ghost")

    def test_the_entry_is_a_line_of_json_fsynced_before_the_answer(self, ks_files):
        self._halt_offline()
        [line] = spool.path().read_text().splitlines()
        entry = json.loads(line)
        assert entry["after"]["condition"] == "halted" and entry["before"]["condition"] == "trading"
