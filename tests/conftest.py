from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test.utils import override_settings

from killswitch.backends import FileBackend
from tests.browser import base_url, browser, open_session  # noqa: F401 (real-browser fixtures)
from tests.incidents.factories import declare, make_user


@pytest.fixture(scope="session", autouse=True)
def _test_settings() -> Iterator[None]:
    """Plain HTTP, static files from the source tree, fast password hashing.

    Session-scoped so it is in place before the browser tests' live server starts: SecurityMiddleware
    reads SECURE_SSL_REDIRECT once, when the server thread builds its handler.
    """
    override = override_settings(
        SECURE_SSL_REDIRECT=False,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        # Real hashing is deliberately slow; tests check permissions, not key stretching.
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        # No worker consumes the test broker's queue (tests call the sweeps): wake nobody, unless a
        # test runs a worker and turns it on.
        WAKE_WORKERS=False,
    )
    override.enable()
    yield
    override.disable()


@pytest.fixture(autouse=True)
def _playbook(db: None) -> None:
    """Every test sees the playbook and the roles, as `make run` leaves them (a transactional test's
    flush empties the groups too, and its post_migrate signal sets them up again)."""
    call_command("load_playbook", verbosity=0)


@pytest.fixture(scope="session", autouse=True)
def _subprocess_audit_anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The test run's audit records (a transactional test's flush writes some after its own settings
    are gone) and those of the workers and commands it starts are anchored in the run's directory,
    never in the laptop's anchor file next to its state file."""
    path = str(tmp_path_factory.mktemp("anchor") / "audit-anchor")
    previous = os.environ.get("AUDIT_ANCHOR_FILE")
    os.environ["AUDIT_ANCHOR_FILE"] = path
    with override_settings(AUDIT_ANCHOR_FILE=path):
        yield
    if previous is None:
        os.environ.pop("AUDIT_ANCHOR_FILE", None)
    else:
        os.environ["AUDIT_ANCHOR_FILE"] = previous


@pytest.fixture(autouse=True)
def _audit_anchor(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """Each test's audit anchor in its own directory: the database rolls back, a file would not."""
    from killswitch import anchor

    settings.AUDIT_ANCHOR_FILE = str(tmp_path / "audit-anchor")
    yield tmp_path / "audit-anchor"
    anchor.flush()


@pytest.fixture
def viewer() -> Any:
    return make_user(username="viewer", role="viewer")


@pytest.fixture
def responder() -> Any:
    return make_user(username="responder", role="responder")


@pytest.fixture
def lead() -> Any:
    return make_user(username="lead", role="lead")


@pytest.fixture
def executive() -> Any:
    return make_user(username="executive", role="executive")


@pytest.fixture
def admin_user() -> Any:
    return make_user(username="admin", role="admin", is_staff=True)


@pytest.fixture
def norole() -> Any:
    return make_user(username="norole")


@pytest.fixture
def incident(responder: Any) -> Any:
    return declare(responder, title="cdb_risk health is error")


@pytest.fixture
def commander(incident: Any, lead: Any) -> Any:
    """A responder who commands `incident` (and so holds its object permissions)."""
    from incidents import services

    user = make_user(username="commander", role="responder")
    services.incident_assign_commander(incident=incident, actor=lead, commander=user)
    return user


@dataclass
class Files:
    production: Path
    drill: Path

    def read(self, name: str = "production") -> str:
        return getattr(self, name).read_text()


@pytest.fixture
def ks_files(settings: Any, tmp_path: Path) -> Files:
    """Both targets on state files in a temporary directory, starting as CDB's deactivate leaves them
    and as the console last observed them (so the first action finds nothing changed outside it).
    Halts made without the database are spooled in the same directory."""
    from django.db import transaction

    from killswitch import services

    files = Files(
        tmp_path / "production" / ".cdb_kill_switch.state", tmp_path / "drill" / ".cdb_kill_switch.state"
    )
    settings.KILLSWITCH_TARGETS = f"production=file:{files.production};drill=file:{files.drill}"
    settings.KILLSWITCH_SPOOL = str(tmp_path / "killswitch-spool.jsonl")
    for name in ("production", "drill"):
        path = getattr(files, name)
        path.parent.mkdir()
        FileBackend(path).deactivate(operator="setup", justification="initial state for the test")
        with transaction.atomic():
            row = services._lock(services.get_target(name))
            services._remember(row, FileBackend(path).read(), by="setup", changed=False)
    return files


@pytest.fixture
def recovered(settings: Any, ks_files: Files) -> None:
    """Every pre-recovery fact the console checks itself is true: a core service up and just checked,
    the recovery rules evaluated and quiet, the kill switch readable (trading, on state files)."""
    from django.utils import timezone

    from detection.models import Health, MonitoredService, PrometheusRule, RulePurpose, RuleState

    now = timezone.now()
    MonitoredService.objects.create(
        name="cdb_risk", url="http://cdb_risk:8002/health", core=True, state=Health.UP, last_checked_at=now
    )
    settings.PROMETHEUS_URL = "http://cdb_prometheus:9090"
    for name in ("recovery-error-rate", "recovery-latency"):
        PrometheusRule.objects.create(
            name=name,
            expr="vector(0)",
            purpose=RulePurpose.RECOVERY,
            state=RuleState.INACTIVE,
            last_evaluated_at=now,
        )


@pytest.fixture
def fresh_queue(settings: Any) -> Iterator[None]:
    """An in-process worker on a broker database of its own, empty: nothing another test or a
    console subprocess published to the suite's broker (tasks started on commit, wake-ups) reaches
    it, and the app's connection pools are made anew, so what this test publishes goes where its
    worker listens."""
    import redis

    from config.celery import app
    from tests.processes import private_broker_url

    url = private_broker_url(8)
    redis.Redis.from_url(url).flushdb()
    before = app.conf.broker_url

    def use(broker: str) -> None:
        # Celery reads the CELERY_BROKER_URL environment variable before its own setting; the pools
        # are made on first use, from that URL.
        os.environ["CELERY_BROKER_URL"] = broker
        app.conf.update(broker_url=broker)
        setattr(app, "_pool", None)  # noqa: B010 (private to mypy)
        setattr(app.amqp, "_producer_pool", None)  # noqa: B010

    settings.CELERY_BROKER_URL = url
    use(url)
    try:
        yield
    finally:
        use(before)
