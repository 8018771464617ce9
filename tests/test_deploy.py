from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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


def _gunicorn_env(**env: str) -> dict[str, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = {k: v for k, v in _environment().items() if k != "DJANGO_SETTINGS_MODULE"}
    base |= {"BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "WEB_THREADS": "2", "WEB_ACCESS_LOG": ""}
    return base | {"SECURE_SSL_REDIRECT": "false", "ALLOWED_HOSTS": "127.0.0.1"} | env


@pytest.mark.django_db
def test_the_production_web_config_serves(tmp_path: Path) -> None:
    """The Procfile's `web`: gunicorn with config/gunicorn.py (its worker hook included) answers (on the
    test database: without one, every page but the kill switch answers 503)."""
    import time

    import httpx
    from django.db import connection

    env = _gunicorn_env(SECRET_KEY=PRODUCTION_KEY, AUDIT_HMAC_KEY=AUDIT_KEY)
    port = env["BIND"].rsplit(":", 1)[1]
    log = tmp_path / "gunicorn.log"
    db = connection.settings_dict
    env["DATABASE_URL"] = (
        f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "-c", "config/gunicorn.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        response = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/login/", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert response is not None and response.status_code == 200, log.read_text()
        assert "Using worker: gthread" in log.read_text()
    finally:
        server.terminate()
        server.wait(10)


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
