"""Drills benchmark: generating a year of occurrences, and the pages that read them, as the
programme grows.

Run from the repository root:  .venv/bin/python bench/drills.py   (needs PostgreSQL)

It uses its own PostgreSQL database (DATABASE_URL with the name replaced by cdb_console_bench_drills,
dropped and recreated on every run).

1. Generation: the playbook's three types plus 47 weekly ones (50 types, ~2,450 occurrences a
   year): the first run's time, and a second run's (which must add nothing). Targets: under 3 s and
   under 1 s.
2. Pages, as a lead: the programme table (`/drills/`) and the month calendar (`/drills/calendar/`)
   with 3 types and with 50: queries must not grow with the number of types (flat), and each page
   answers within 300 ms.

The last line is `targets met` or `targets missed: <which>`; the exit code is 0 either way.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import bench_database_urls, recreate_database, setup_django  # noqa: E402

BENCH_DB = "cdb_console_bench_drills"
TYPES = 50
GENERATE_TARGET_S, REGENERATE_TARGET_S, PAGE_TARGET_MS = 3.0, 1.0, 300.0


def row(label: str, value: str, target: str) -> str:
    return f"{label:<44} {value:>14}   {target:<18}"


def pages(client: object) -> dict[str, tuple[int, float]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    found = {}
    for url in ("/drills/", "/drills/calendar/"):
        client.get(url)  # type: ignore[attr-defined]  # warm
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)  # type: ignore[attr-defined]
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (url, response.status_code)
        found[url] = (len(queries), elapsed)
    return found


def main() -> None:
    database_url, maintenance_url = bench_database_urls(BENCH_DB, "bench/drills.py")
    recreate_database(maintenance_url, BENCH_DB)
    setup_django(database_url)
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client

    from drills import services
    from drills.models import DrillType

    call_command("migrate", verbosity=0)
    call_command("load_playbook", verbosity=0)
    lead = User.objects.create_user("bench-lead", password="x")
    lead.groups.add(Group.objects.get(name="lead"))
    client = Client()
    client.force_login(lead)
    rows, missed = [], []

    services.drills_generate()
    small = pages(client)
    scenario = {"kind": "alert", "incident_type": "other", "severity": 3, "signals": []}
    DrillType.objects.bulk_create(
        DrillType(
            slug=f"bench-{i}",
            name=f"Bench drill {i}",
            rrule=f"FREQ=WEEKLY;BYDAY={['MO', 'TU', 'WE', 'TH', 'FR'][i % 5]}",
            starts_at=datetime(2026, 1, 5, 8 + i % 8, tzinfo=UTC),
            scenario=scenario,
            position=10 + i,
        )
        for i in range(TYPES - 3)
    )
    for kind in DrillType.objects.filter(slug__startswith="bench-"):
        kind.participants.add(lead)
    started = time.perf_counter()
    made = services.drills_generate()
    first = time.perf_counter() - started
    started = time.perf_counter()
    again = services.drills_generate()
    second = time.perf_counter() - started
    rows.append(
        row(f"generate a year, {TYPES} types", f"{first:.2f} s", f"< {GENERATE_TARGET_S} s ({made} new)")
    )
    rows.append(row("generate again", f"{second:.2f} s", f"< {REGENERATE_TARGET_S} s ({again} new)"))
    if first > GENERATE_TARGET_S:
        missed.append(f"generation {first:.2f} s")
    if second > REGENERATE_TARGET_S or again:
        missed.append(f"regeneration {second:.2f} s, {again} new")
    big = pages(client)
    for url in small:
        (q1, _), (q2, ms) = small[url], big[url]
        rows.append(row(f"GET {url}, 3 → {TYPES} types", f"{q1} → {q2} q", f"flat, {ms:.0f} ms"))
        if q2 > q1:
            missed.append(f"{url} queries grow with types: {q1} -> {q2}")
        if ms > PAGE_TARGET_MS:
            missed.append(f"{url} took {ms:.0f} ms")
    print(row("measure", "value", "target"))
    print("-" * 80)
    for line in rows:
        print(line)
    print("targets met" if not missed else "targets missed: " + "; ".join(missed))


if __name__ == "__main__":
    main()
