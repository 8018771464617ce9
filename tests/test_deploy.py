from __future__ import annotations

import configparser
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
# What the deploy tests remove from the environment: unset, not empty, as on a fresh server.
SECRETS = ("DEBUG", "SECRET_KEY", "AUDIT_HMAC_KEY")
PRODUCTION_KEY = "k9#Yq2v!pX7$wL3z@R8m^T1n&B6c*H4j(D0s)F5g_Qe-Ua+Zi=Ok[Pl]Wy{Ex}Vr"
AUDIT_KEY = "a-separate-audit-key-kept-outside-the-database-0123456789"


def _environment(**env: str) -> dict[str, str]:
    """This process's environment without the secrets and DEBUG, plus `env`."""
    kept = {k: v for k, v in os.environ.items() if k not in (*SECRETS, "DJANGO_ALLOW_ASYNC_UNSAFE")}
    return {**kept, **env}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_passes_with_production_variables():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY=PRODUCTION_KEY,
        AUDIT_HMAC_KEY=AUDIT_KEY,
        ALLOWED_HOSTS="console.cdb.example",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_with_the_development_defaults():
    """The guard works: DEBUG on and the development key (no SECRET_KEY set) are reported."""
    result = _manage("check", "--deploy", "--fail-level", "WARNING", DEBUG="true")
    assert result.returncode != 0
    assert "security.W018" in result.stderr  # DEBUG
    assert "security.W009" in result.stderr  # weak SECRET_KEY


def test_without_debug_a_missing_secret_key_fails_every_check():
    """DEBUG unset (off) and SECRET_KEY unset: no development key is used; `check` and
    `check --deploy` fail (at their default level) and say what to set."""
    for args in (["check"], ["check", "--deploy"]):
        result = _manage(*args, AUDIT_HMAC_KEY=AUDIT_KEY, ALLOWED_HOSTS="console.cdb.example")
        assert result.returncode != 0, args
        assert "console.E001" in result.stderr and "SECRET_KEY is not set" in result.stderr


def test_without_debug_the_audit_key_must_be_set_explicitly():
    """A key derived from SECRET_KEY is for development only: with DEBUG off, AUDIT_HMAC_KEY is required."""
    result = _manage("check", "--deploy", SECRET_KEY=PRODUCTION_KEY, ALLOWED_HOSTS="console.cdb.example")
    assert result.returncode != 0
    assert "console.E002" in result.stderr and "AUDIT_HMAC_KEY is not set" in result.stderr
    assert "console.E001" not in result.stderr


def test_makemigrations_needs_no_secrets_and_finds_the_models_and_migrations_agree():
    """It writes code and signs nothing: without DEBUG and both secrets it runs (the secrets check
    still fails `check`, above); `--check` exits 0 only when no migration is missing."""
    result = _manage("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout
    assert "console.E00" not in result.stderr
    assert _manage("check").returncode != 0  # the same environment still fails the secrets check


def test_with_debug_both_keys_have_development_defaults():
    result = _manage("check", DEBUG="true")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_secrets_are_never_read_from_empty_variables():
    """An empty variable counts as unset (a templated unit file with a missing value)."""
    result = _manage("check", SECRET_KEY="", AUDIT_HMAC_KEY="")
    assert result.returncode != 0
    assert "console.E001" in result.stderr and "console.E002" in result.stderr


@pytest.mark.django_db
def test_security_headers_and_csp(client, viewer):
    client.force_login(viewer)
    response = client.get("/", secure=True)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_no_cdn_assets_in_templates():
    """Incidents happen when networks fail: every asset is served by the console itself."""
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        assert "https://" not in text and "http://" not in text and "//cdn" not in text, path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _gunicorn_env(**env: str) -> dict[str, str]:
    """The web's environment without this process's secrets, on a free port, plus `env`."""
    base = {k: v for k, v in _environment().items() if k not in ("DJANGO_SETTINGS_MODULE", "XDG_RUNTIME_DIR")}
    base |= {
        "BIND": f"127.0.0.1:{_free_port()}",
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "2",
        "WEB_ACCESS_LOG": "",
    }
    return base | {"SECURE_SSL_REDIRECT": "false", "ALLOWED_HOSTS": "127.0.0.1"} | env


@contextmanager
def _gunicorn(log: Path, **extra_env: str) -> Iterator[int]:
    """gunicorn -c config/gunicorn.py (the Procfile's `web`) on a free port, answering /login/, on the
    test database (without one, every page but the kill switch answers 503)."""
    from django.db import connection

    db = connection.settings_dict
    database = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = _gunicorn_env(
        **({"SECRET_KEY": PRODUCTION_KEY, "AUDIT_HMAC_KEY": AUDIT_KEY, "DATABASE_URL": database} | extra_env)
    )
    port = int(env["BIND"].rsplit(":", 1)[1])
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "-c", "config/gunicorn.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        response = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/login/", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert response is not None and response.status_code == 200, log.read_text()
        yield port
    finally:
        server.terminate()
        server.wait(20)


def test_the_web_refuses_to_start_without_its_secrets(tmp_path: Path) -> None:
    """DEBUG off and no SECRET_KEY: gunicorn's worker does not boot, and the log says why."""
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "-c", "config/gunicorn.py"],
            cwd=ROOT,
            env=_gunicorn_env(AUDIT_HMAC_KEY=AUDIT_KEY),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert server.wait(60) != 0
    finally:
        if server.poll() is None:
            server.kill()
    text = log.read_text()
    assert "ImproperlyConfigured" in text and "SECRET_KEY is not set" in text, text


@pytest.mark.django_db
def test_the_production_web_config_serves(tmp_path: Path) -> None:
    """The Procfile's `web`: gunicorn with config/gunicorn.py (its worker hook included) answers."""
    log = tmp_path / "gunicorn.log"
    with _gunicorn(log):
        assert "Using worker: gthread" in log.read_text()


@pytest.mark.django_db
def test_two_consoles_on_one_host_do_not_share_a_control_socket(tmp_path: Path) -> None:
    """gunicorn's control socket sits at one path per user unless told otherwise: a second console
    started by the same user would take it over (and delete it when it stops). It is off by default,
    and when asked for, each instance has its own."""
    home = tmp_path / "home"
    home.mkdir()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with _gunicorn(logs[0], HOME=str(home)), _gunicorn(logs[1], HOME=str(home)):
        assert not any("Control socket listening" in log.read_text() for log in logs)
        assert not list(home.rglob("*.ctl"))
    sockets = [tmp_path / "a.ctl", tmp_path / "b.ctl"]
    with (
        _gunicorn(logs[0], HOME=str(home), WEB_CONTROL_SOCKET=str(sockets[0])) as port_a,
        _gunicorn(logs[1], HOME=str(home), WEB_CONTROL_SOCKET=str(sockets[1])) as port_b,
    ):
        gunicornc = str(Path(sys.executable).with_name("gunicornc"))
        for path, port in zip(sockets, (port_a, port_b), strict=True):
            answer = subprocess.run(
                [gunicornc, "-s", str(path), "-j", "-c", "show config"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            assert f"127.0.0.1:{port}" in answer.stdout, answer.stdout


# --- The supervised process set (deploy/systemd) --------------------------------------------------

UNITS = ROOT / "deploy" / "systemd"
PROCESSES = ("web", "worker", "beat")


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


class _UnitFile(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # systemd's keys are case-sensitive


def _unit(name: str) -> configparser.ConfigParser:
    unit = _UnitFile(strict=False, interpolation=None)
    unit.read(UNITS / f"cdb-console-{name}.service")
    return unit


def test_each_process_is_a_service_that_restarts_whatever_its_exit() -> None:
    procfile = _procfile()
    assert set(procfile) == set(PROCESSES)
    for name in PROCESSES:
        service = _unit(name)["Service"]
        assert service["ExecStart"] == f"/opt/cdb-console/{procfile[name]}", name  # the Procfile's command
        assert (service["Restart"], _unit(name)["Unit"]["StartLimitIntervalSec"]) == ("always", "0"), name
        assert service["WorkingDirectory"] == "/opt/cdb-console" and service["User"] == "cdb-console"
    # Celery's warm shutdown: SIGTERM to the main process, SIGKILL to the rest only after the timeout.
    assert (_unit("worker")["Service"]["KillMode"], _unit("worker")["Service"]["KillSignal"]) == (
        "mixed",
        "SIGTERM",
    )
    assert all(
        f"{flag} " in procfile["worker"] + " "
        for flag in ("--without-gossip", "--without-mingle", "--without-heartbeat")
    )
    target = (UNITS / "cdb-console.target").read_text()
    assert all(f"cdb-console-{name}.service" in target for name in PROCESSES)


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd's own checker, offline: syntax, known keys, and executables that exist (the units are
    pointed at this checkout for that)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    env = tmp_path / "env"
    env.write_text("DEBUG=false\n")
    for unit in UNITS.iterdir():
        text = (
            unit.read_text().replace("/opt/cdb-console", str(ROOT)).replace("/etc/cdb-console/env", str(env))
        )
        (tmp_path / unit.name).write_text(text)
    units = sorted(str(p) for p in tmp_path.iterdir() if p.suffix in (".service", ".target"))
    result = subprocess.run(
        [analyze, "verify", *units], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )
