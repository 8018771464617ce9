"""What every benchmark needs first: its own fresh PostgreSQL database, and Django set up on it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdb_console"


def bench_database_urls(name: str, script: str) -> tuple[str, str]:
    """(bench database URL, maintenance database URL) from DATABASE_URL with the name replaced."""
    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise SystemExit(f"{script} needs PostgreSQL; DATABASE_URL is {parts.scheme}://")
    return urlunsplit(parts._replace(path=f"/{name}")), urlunsplit(parts._replace(path="/postgres"))


def recreate_database(maintenance_url: str, name: str) -> None:
    conninfo = maintenance_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))


def setup_django(database_url: str, **env: str) -> None:
    """Production-like settings (DEBUG off) served over the test client's plain HTTP."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DEBUG"] = "false"
    os.environ["ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1"
    os.environ["SECURE_SSL_REDIRECT"] = "false"
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    # The bench recreates its database: its audit anchor is its own, never the laptop's.
    os.environ.setdefault(
        "AUDIT_ANCHOR_FILE", str(Path(tempfile.mkdtemp(prefix="cdb-bench-")) / "audit-anchor")
    )
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
