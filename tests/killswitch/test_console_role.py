"""deploy/postgres/console-role.sql: the console runs as a role that does not own the audit table,
so that role cannot change, delete, truncate or unprotect the audit, and the console still works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

SCRIPT = Path(settings.BASE_DIR) / "deploy" / "postgres" / "console-role.sql"
ROLE = f"cdb_console_test_{os.getpid()}"
PSQL = shutil.which("psql") or "psql"


def _url(db: dict[str, Any], user: str, password: str = "") -> str:
    auth = f"{user}:{password}" if password else user
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def console_role() -> Any:
    """The script applied to the test database as its owner; the role dropped afterwards (roles
    are the server's, not the database's)."""
    db = connection.settings_dict
    owner = _url(db, db["USER"], db["PASSWORD"] or "")
    subprocess.run(
        [
            PSQL,
            owner,
            "-q",
            "-v",
            f"console_role={ROLE}",
            "-v",
            "console_password=secret",
            "-f",
            str(SCRIPT),
        ],
        check=True,
        capture_output=True,
    )
    # Twice: the script is idempotent (it runs after every migrate).
    subprocess.run(
        [
            PSQL,
            owner,
            "-q",
            "-v",
            f"console_role={ROLE}",
            "-v",
            "console_password=secret",
            "-f",
            str(SCRIPT),
        ],
        check=True,
        capture_output=True,
    )
    yield _url(db, ROLE, "secret")
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{ROLE}"')
        conn.execute(f'DROP ROLE IF EXISTS "{ROLE}"')


def _console(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "AUDIT_ANCHOR_FILE": settings.AUDIT_ANCHOR_FILE,
        "AUDIT_HMAC_KEY": settings.AUDIT_HMAC_KEY,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True
    )


REFUSED = [
    "UPDATE killswitch_auditrecord SET reason = 'nothing'",
    "DELETE FROM killswitch_auditrecord",
    "TRUNCATE killswitch_auditrecord",
    "DROP TRIGGER killswitch_audit_append_only ON killswitch_auditrecord",
    "ALTER TABLE killswitch_auditrecord DISABLE TRIGGER ALL",
    "SET session_replication_role = replica",
    "DELETE FROM killswitch_audithead",
    "TRUNCATE killswitch_audithead",
]


@pytest.mark.django_db(transaction=True)
def test_the_console_role_cannot_touch_the_audit_but_the_console_works(
    console_role: str, ks_files: Any, responder: Any, monkeypatch: Any
) -> None:
    for sql in REFUSED:
        with psycopg.connect(console_role) as conn:
            conn.execute("SELECT count(*) FROM killswitch_auditrecord")  # it reads
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
    monkeypatch.setenv(
        "KILLSWITCH_TARGETS", f"production=file:{ks_files.production};drill=file:{ks_files.drill}"
    )
    halt = _console(
        console_role, "killswitch", "activate", "--as", responder.username, "--message", "role test"
    )
    assert halt.returncode == 0, halt.stderr
    assert "Trading halted" in halt.stdout
    verify = _console(console_role, "killswitch", "verify-audit")
    assert verify.returncode == 0, verify.stderr
    assert "Audit chain intact" in verify.stdout
