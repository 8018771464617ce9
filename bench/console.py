"""Console benchmark: server time and query counts of the pages people keep open during an incident.

Run from the repository root:  .venv/bin/python bench/console.py [--sql]

It uses its own PostgreSQL database (DATABASE_URL with the name replaced by cdb_console_bench, dropped and
recreated on every run), seeds 10,000 incidents with their checklists and 200,000 timeline events, logs
in a responder through django.test.Client and times the home page, the live incident page and an
unchanged poll in-process (server time = wall time of Client.get, no network, no browser). Query counts
are taken at 1,000 incidents and again at 10,000: a page whose count grows with the data has an N+1.
The last line is `targets met` or `targets missed: <which>`; the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

# Run as a script (python bench/x.py): the repository root must come first on the path.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import bench_database_urls, recreate_database, setup_django  # noqa: E402

BENCH_DB = "cdb_console_bench"

INCIDENTS = 10_000
EVENTS = 200_000
SMALL = 1_000  # query counts are taken here too, then at full size
OPEN_SHARE = 0.03
SEED = 20_240_601

PAGE_P95_MS = 150.0
POLL_P95_MS = 15.0
WARMUP = 20
PAGE_RUNS = 200
POLL_RUNS = 500


# --- Database -----------------------------------------------------------------------------------


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY rows into a table through Django's connection (inside the caller's transaction)."""
    from django.db import connection

    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    n = 0
    with connection.cursor() as cursor, cursor.cursor.copy(stmt) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def sync_sequence(table: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence(%s, 'id'), COALESCE((SELECT max(id) FROM {table}), 1))",  # noqa: S608
            [table],
        )


def vacuum_analyze() -> None:
    """ANALYZE for the planner; VACUUM too, so autovacuum does not wake up during the timing."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")


# --- Seed data ----------------------------------------------------------------------------------

COMPONENTS = [
    "cdb_execution",
    "cdb_market",
    "cdb_risk",
    "cdb_ws",
    "cdb_signal",
    "cdb_db",
    "cdb_redis",
    "cdb_grafana",
    "cdb_core",
]
SYMPTOMS = [
    "restarting every 40 s",
    "8 s behind exchange",
    "health check failing",
    "429s from exchange API",
    "memory above 90%",
    "orders stuck in queue",
    "dashboard not loading",
    "log rotation failed",
    "p99 latency above 2 s",
    "circuit breaker triggered",
]
NOTES = [
    "OOM kills in `docker stats`; limit is 256 MiB.",
    "Rolled back to the previous image, watching error rate.",
    "Exchange status page reports degraded API in eu-west.",
    "No pending orders left in Redis.",
    "Raised the limit to 512 MiB; restarts stopped.",
    "Metrics back to baseline for 15 minutes.",
    "Root cause: connection pool exhausted after the deploy. Follow-up issue filed with the full "
    "timeline, the Grafana panels and the exact deploy diff; post-mortem scheduled for Thursday.",
    "Paged the on-call for the exchange adapter.",
]
SEVERITY_WEIGHTS = {1: 5, 2: 15, 3: 40, 4: 40}
OPEN_STATUS_PATH = {
    "triage": [],
    "investigating": ["investigating"],
    "mitigating": ["investigating", "mitigating"],
    "monitoring": ["investigating", "mitigating", "monitoring"],
}
CLOSED_STATUS_PATH = {
    "resolved": ["investigating", "mitigating", "monitoring", "resolved"],
    "closed": ["investigating", "mitigating", "monitoring", "resolved", "closed"],
}

INCIDENT_COLUMNS = [
    "id",
    "title",
    "description",
    "affected_components",
    "incident_type_id",
    "severity",
    "status",
    "decision_answers",
    "is_drill",
    "detected_at",
    "declared_at",
    "declared_by_id",
    "ack_due_at",
    "acknowledged_at",
    "acknowledged_by_id",
    "sla_breached_at",
    "commander_id",
    "resolved_at",
    "closed_at",
    "version",
    "war_room_url",
    "playbook_version_id",
]
ITEM_COLUMNS = ["id", "incident_id", "kind", "position", "text", "done_at", "done_by_id", "fact_name"]
EVENT_COLUMNS = [
    "id",
    "incident_id",
    "kind",
    "actor_id",
    "created_at",
    "old_value",
    "new_value",
    "message",
    "data",
]


@dataclass
class Batch:
    incidents: list[tuple[Any, ...]] = field(default_factory=list)
    items: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    grants: list[tuple[int, int]] = field(default_factory=list)  # (commander id, incident id)


@dataclass(frozen=True)
class Seeded:
    pk: int
    status: str
    severity: int
    events: int
    version: int


class Seeder:
    """Generates a deterministic, plausible incident history and writes it with COPY."""

    def __init__(self, users: dict[str, Any], now: datetime) -> None:
        from incidents.models import Checklist, ChecklistKind, IncidentType, SeverityLevel

        self.rng = random.Random(SEED)
        self.now = now
        self.users = users
        self.actors = [u for name, u in users.items() if name != "bench-responder"]
        self.types = list(IncidentType.objects.all())
        self.response = dict(SeverityLevel.objects.values_list("level", "response_minutes"))
        checklists = {c.kind: list(c.items) for c in Checklist.objects.all()}
        self.kinds = list(ChecklistKind.values)
        self.templates = {
            t.pk: [
                (kind, i, str(text)[:300])
                for kind in self.kinds
                for i, text in enumerate(
                    list(t.runbook_steps) if kind == ChecklistKind.RUNBOOK else checklists.get(kind, [])
                )
            ]
            for t in self.types
        }
        self.event_counts = self._event_counts()
        self.open_ids = set(self.rng.sample(range(1, SMALL + 1), round(SMALL * OPEN_SHARE)))
        self.open_ids |= set(
            self.rng.sample(range(SMALL + 1, INCIDENTS + 1), round((INCIDENTS - SMALL) * OPEN_SHARE))
        )
        from incidents.playbook import current_version

        version = current_version()
        self.playbook_version = version.pk if version else None
        self.next_item = 1
        self.next_event = 1
        self.seeded: list[Seeded] = []

    def _event_counts(self) -> list[int]:
        """About 20 events per incident (12 to 28), exactly EVENTS in total."""
        counts = [self.rng.randint(12, 28) for _ in range(INCIDENTS)]
        diff = EVENTS - sum(counts)
        while diff:
            i = self.rng.randrange(INCIDENTS)
            step = 1 if diff > 0 else -1
            if 12 <= counts[i] + step <= 28:
                counts[i] += step
                diff -= step
        return counts

    def seed(self, first: int, last: int) -> None:
        """Create incidents first..last (inclusive ids) with their items, events and grants."""
        from django.contrib.auth.models import Permission
        from django.contrib.contenttypes.models import ContentType
        from django.db import transaction
        from guardian.models import UserObjectPermission

        from incidents.models import Incident, IncidentChecklistItem, TimelineEvent

        batch = Batch()
        for pk in range(first, last + 1):
            self._incident(pk, batch)
        ct = ContentType.objects.get_for_model(Incident)
        perms = list(
            Permission.objects.filter(content_type=ct, codename__in=["view_incident", "change_incident"])
        )
        with transaction.atomic():
            copy_rows(Incident._meta.db_table, INCIDENT_COLUMNS, batch.incidents)
            copy_rows(IncidentChecklistItem._meta.db_table, ITEM_COLUMNS, batch.items)
            copy_rows(TimelineEvent._meta.db_table, EVENT_COLUMNS, batch.events)
            UserObjectPermission.objects.bulk_create(
                (
                    UserObjectPermission(user_id=user_id, permission=perm, content_type=ct, object_pk=str(pk))
                    for user_id, pk in batch.grants
                    for perm in perms
                ),
                batch_size=5000,
            )
            for model in (Incident, IncidentChecklistItem, TimelineEvent):
                sync_sequence(model._meta.db_table)
        vacuum_analyze()

    def _incident(self, pk: int, batch: Batch) -> None:
        rng, now = self.rng, self.now
        is_open = pk in self.open_ids
        itype = rng.choice(self.types)
        if is_open:
            severity = rng.randint(1, 4)
            status = rng.choice(list(OPEN_STATUS_PATH))
            detected = now - timedelta(minutes=rng.uniform(30, 3 * 24 * 60))
        else:
            severity = rng.choices(list(SEVERITY_WEIGHTS), weights=list(SEVERITY_WEIGHTS.values()))[0]
            status = "resolved" if rng.random() < 0.15 else "closed"
            days = rng.uniform(6, 30) if status == "resolved" else rng.uniform(12, 730)
            detected = now - timedelta(days=days)
        declared = min(detected + timedelta(minutes=rng.uniform(1, 10)), now - timedelta(minutes=1))
        ack_due = detected + timedelta(minutes=self.response[severity])
        declarer = rng.choice(self.actors)
        components = rng.sample(COMPONENTS, rng.randint(1, 3))
        title = f"{components[0]} {rng.choice(SYMPTOMS)}"
        answers = None
        if rng.random() < 0.5:
            answers = {
                "losing_money": severity == 1,
                "services_down": "core" if severity == 1 else "one" if severity == 2 else "none",
                "degraded": severity <= 3,
                "suggested": severity,
                "activate_kill_switch": severity <= 2,
            }
        # (time, kind, actor, old, new, message, data)
        spine: list[tuple[datetime, str, Any, str, str, str, dict[str, Any]]] = []
        first_sev = severity + 1 if severity < 4 and rng.random() < 0.1 else severity
        spine.append(
            (
                declared,
                "declared",
                declarer,
                "",
                f"SEV-{first_sev}",
                title,
                {"type": itype.slug, "components": components, "decision": answers},
            )
        )
        if first_sev != severity:
            spine.append(
                (
                    declared + timedelta(minutes=2),
                    "severity_changed",
                    declarer,
                    f"SEV-{first_sev}",
                    f"SEV-{severity}",
                    "Customer impact confirmed.",
                    {},
                )
            )
        end = now - timedelta(seconds=30)
        acked = not is_open or status != "triage" or rng.random() < 0.5
        ack_at = acker = breached_at = commander = None
        if acked:
            window = self.response[severity] * (1.3 if not is_open else 1.0)
            ack_at = detected + timedelta(minutes=rng.uniform(0.1, 1.0) * window)
            ack_at = min(max(ack_at, declared + timedelta(seconds=30)), end - timedelta(minutes=5))
            acker = rng.choice(self.actors)
        late = (ack_at or end) > ack_due
        if late:
            breached_at = ack_due + timedelta(seconds=rng.uniform(1, 15))
            if breached_at < end:
                overdue = int((breached_at - ack_due).total_seconds())
                spine.append(
                    (
                        breached_at,
                        "sla_breached",
                        None,
                        ack_due.isoformat(),
                        "",
                        f"Not acknowledged within the SEV-{severity} response time.",
                        {"overdue_seconds": overdue},
                    )
                )
            else:
                breached_at = None
        if ack_at is not None and acker is not None:
            response_seconds = int((ack_at - detected).total_seconds())
            spine.append(
                (
                    ack_at,
                    "acknowledged",
                    acker,
                    "",
                    acker.username,
                    "",
                    {"response_seconds": response_seconds},
                )
            )
            if severity <= 2 or rng.random() < 0.3:
                commander = rng.choice(self.actors)
                spine.append(
                    (
                        ack_at + timedelta(minutes=1),
                        "commander_assigned",
                        acker,
                        "",
                        commander.username,
                        "",
                        {},
                    )
                )
        path = OPEN_STATUS_PATH[status] if is_open else CLOSED_STATUS_PATH[status]
        resolved_at = closed_at = None
        start = (ack_at or declared) + timedelta(minutes=2)
        if is_open:
            stop = end
        else:
            resolved_at = start + timedelta(hours=rng.uniform(0.5, 72))
            stop = resolved_at
            if status == "closed":
                closed_at = resolved_at + timedelta(days=rng.uniform(1, 5))
        moments = sorted(start + (stop - start) * rng.random() for _ in path)
        if resolved_at is not None:
            moments[path.index("resolved")] = resolved_at
        if closed_at is not None:
            moments[path.index("closed")] = closed_at
        previous = "triage"
        actor = commander or acker or declarer
        for at, to in zip(moments, path, strict=True):
            spine.append((at, "status_changed", actor, previous, to, "", {}))
            previous = to

        # Checklist items (a snapshot of the playbook, as incident_declare makes) and the filler
        # events: ticks first, then notes and the odd edit, up to this incident's event count.
        last_moment = closed_at - timedelta(minutes=1) if closed_at else end
        first_moment = ack_at or declared
        fillers = max(0, self.event_counts[pk - 1] - len(spine))
        template = self.templates[itype.pk]
        ticks = min(len(template), round(fillers * (0.7 if not is_open else 0.4)))
        tick_times = sorted(first_moment + (last_moment - first_moment) * rng.random() for _ in range(ticks))
        events = list(spine)
        for n, (kind, position, text) in enumerate(template):
            done_at = done_by = None
            if n < ticks:
                done_at, done_by = tick_times[n], rng.choice(self.actors)
                events.append(
                    (
                        done_at,
                        "checklist_item",
                        done_by,
                        "open",
                        "done",
                        text,
                        {"item": self.next_item, "checklist": kind},
                    )
                )
            batch.items.append(
                (self.next_item, pk, kind, position, text, done_at, done_by.pk if done_by else None, "")
            )
            self.next_item += 1
        for _ in range(fillers - ticks):
            at = first_moment + (last_moment - first_moment) * rng.random()
            if rng.random() < 0.05:
                events.append(
                    (
                        at,
                        "edited",
                        declarer,
                        "title",
                        "",
                        "Changed title",
                        {"changes": {"title": [title, title]}},
                    )
                )
            else:
                events.append((at, "note", rng.choice(self.actors), "", "", rng.choice(NOTES), {}))
        events.sort(key=lambda e: e[0])
        for at, kind, who, old, new, message, data in events:
            batch.events.append(
                (
                    self.next_event,
                    pk,
                    kind,
                    who.pk if who else None,
                    at,
                    old[:200],
                    new[:200],
                    message,
                    Jsonb(data),
                )
            )
            self.next_event += 1
        version = self.next_event - 1
        batch.incidents.append(
            (
                pk,
                title,
                f"{title}. Seeded by bench/console.py.",
                Jsonb(components),
                itype.pk,
                severity,
                status,
                Jsonb(answers) if answers is not None else None,
                rng.random() < 0.03,
                detected,
                declared,
                declarer.pk,
                ack_due,
                ack_at,
                acker.pk if acker else None,
                breached_at,
                commander.pk if commander else None,
                resolved_at,
                closed_at,
                version,
                "",
                self.playbook_version,
            )
        )
        if commander is not None:
            batch.grants.append((commander.pk, pk))
        self.seeded.append(Seeded(pk, status, severity, len(events), version))

    def live_incident(self) -> Seeded:
        """An open incident from the small set with about 20 events (the page people watch)."""
        candidates = [
            s for s in self.seeded if s.pk <= SMALL and s.pk in self.open_ids and s.status != "triage"
        ]
        return min(candidates, key=lambda s: (abs(s.events - 20), s.severity, s.pk))


def create_users() -> dict[str, Any]:
    """The logged-in responder plus a few on-call people who act on and command incidents."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()
    users: dict[str, Any] = {}
    for name, role in [
        ("bench-responder", "responder"),
        *[(f"oncall-{c}", "responder") for c in "abcdef"],
        ("lead-a", "lead"),
        ("lead-b", "lead"),
    ]:
        user = User.objects.create_user(username=name, password=None)
        user.groups.add(Group.objects.get(name=role))
        users[name] = user
    return users


# --- Measurement --------------------------------------------------------------------------------


@dataclass
class Page:
    name: str
    url: str
    status: int
    target_ms: float
    runs: int
    headers: dict[str, str] = field(default_factory=dict)
    one_query: bool = False
    queries: dict[str, int] = field(default_factory=dict)
    captured: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def get(self, client: Any) -> Any:
        response = client.get(self.url, headers=self.headers)
        if response.status_code != self.status:
            raise SystemExit(
                f"{self.name}: GET {self.url} answered {response.status_code}, expected {self.status}"
            )
        return response

    def count_queries(self, client: Any, label: str) -> None:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        counts = []
        for _ in range(3):
            with CaptureQueriesContext(connection) as ctx:
                self.get(client)
            counts.append(len(ctx.captured_queries))
        self.queries[label] = max(counts)
        self.captured = list(ctx.captured_queries)

    def timed_get(self, client: Any) -> None:
        started = time.perf_counter()
        self.get(client)
        self.times.append((time.perf_counter() - started) * 1000)

    @property
    def p50(self) -> float:
        return statistics.median(self.times)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.times, n=100, method="inclusive")[94]

    def misses(self) -> list[str]:
        missed = []
        if self.p95 > self.target_ms:
            missed.append(f"{self.name} p95 {self.p95:.1f} ms > {self.target_ms:g} ms")
        small, full = self.queries.get("1k"), self.queries.get("10k")
        if small != full:
            missed.append(f"{self.name} queries grow ({small} → {full})")
        if self.one_query and full != 1:
            missed.append(f"{self.name} uses {full} queries, not 1")
        return missed

    def target(self) -> str:
        queries = "1 query" if self.one_query else "queries flat"
        return f"p95 ≤ {self.target_ms:g} ms, {queries}"


def time_pages(client: Any, pages: list[Page]) -> None:
    """Warm up, then time the pages' requests in one shuffled sequence, so a burst of load from
    elsewhere on the machine spreads over all pages instead of landing on one page's series."""
    for page in pages:
        for _ in range(WARMUP):
            page.get(client)
        page.times = []
    schedule = [page for page in pages for _ in range(page.runs)]
    random.Random(SEED).shuffle(schedule)
    for page in schedule:
        page.timed_get(client)


def print_table(pages: list[Page]) -> None:
    header = ["page", "p50 ms", "p95 ms", "queries @1k", "queries @10k", "target", "result"]
    rows = [
        [
            p.name,
            f"{p.p50:.1f}",
            f"{p.p95:.1f}",
            str(p.queries.get("1k", "-")),
            str(p.queries.get("10k", "-")),
            p.target(),
            "missed" if p.misses() else "met",
        ]
        for p in pages
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {1, 2, 3, 4}

    def line(cells: list[str]) -> str:
        return " | ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print(line(header))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def print_sql(pages: list[Page]) -> None:
    for page in pages:
        print(f"\n-- {page.name}: {len(page.captured)} queries (GET {page.url})")
        for q in page.captured:
            print(f"[{float(q['time']) * 1000:7.2f} ms] {q['sql']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sql", action="store_true", help="print each page's SQL at full size")
    args = parser.parse_args()

    database_url, maintenance_url = bench_database_urls(BENCH_DB, "bench/console.py")
    started = time.perf_counter()
    recreate_database(maintenance_url, BENCH_DB)
    setup_django(database_url)

    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import override_settings
    from django.utils import timezone

    from console.models import ConsoleSession
    from incidents.models import Incident, IncidentChecklistItem, TimelineEvent

    call_command("migrate", verbosity=0, interactive=False)
    call_command("load_playbook", stdout=io.StringIO())
    # Production serves hashed static names from a collected manifest; build one in a temporary
    # STATIC_ROOT so the templates' {% static %} tags work with DEBUG off, without touching the repo.
    static_root = tempfile.TemporaryDirectory(prefix="cdb-bench-static-")
    override_settings(STATIC_ROOT=static_root.name).enable()
    call_command("collectstatic", verbosity=0, interactive=False)
    print(f"database {BENCH_DB} created and migrated in {time.perf_counter() - started:.1f} s")

    users = create_users()
    seeder = Seeder(users, timezone.now())
    seed_started = time.perf_counter()
    seeder.seed(1, SMALL)
    small_seconds = time.perf_counter() - seed_started

    client = Client()
    client.force_login(users["bench-responder"])
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    session = ConsoleSession.objects.get(session_key=session_key)
    if session.user_id != users["bench-responder"].pk:
        raise SystemExit(f"ConsoleSession.user_id is {session.user_id}, expected the responder's id")
    print(f"logged in as bench-responder; ConsoleSession row carries user_id={session.user_id}")

    live = seeder.live_incident()
    pages = [
        Page("home /", "/", 200, PAGE_P95_MS, PAGE_RUNS),
        Page(f"incident /incidents/{live.pk}/", f"/incidents/{live.pk}/", 200, PAGE_P95_MS, PAGE_RUNS),
        Page(
            "poll (unchanged)",
            f"/incidents/{live.pk}/poll/?v={live.version}",
            204,
            POLL_P95_MS,
            POLL_RUNS,
            headers={"HX-Request": "true"},
            one_query=True,
        ),
    ]
    for page in pages:
        page.get(client)  # warm process-wide caches (content types, templates) before counting
        page.count_queries(client, "1k")

    seed_started = time.perf_counter()
    seeder.seed(SMALL + 1, INCIDENTS)
    seed_seconds = small_seconds + time.perf_counter() - seed_started
    counts = (
        Incident.objects.count(),
        Incident.objects.filter(status__in=["resolved", "closed"]).count(),
        IncidentChecklistItem.objects.count(),
        TimelineEvent.objects.count(),
    )
    print(
        f"seeded {counts[0]:,} incidents ({counts[0] - counts[1]:,} open), {counts[2]:,} checklist items, "
        f"{counts[3]:,} timeline events in {seed_seconds:.1f} s (COPY + VACUUM ANALYZE)"
    )
    print(
        f"live incident INC-{live.pk}: {live.status}, SEV-{live.severity}, "
        f"{live.events} events, version {live.version}"
    )

    for page in pages:
        page.count_queries(client, "10k")
    load_before = os.getloadavg()[0]
    time_pages(client, pages)
    load_after = os.getloadavg()[0]
    print(
        f"server time = wall time of django.test.Client.get in-process; {WARMUP} warm-up requests per page, "
        f"then {PAGE_RUNS} per page and {POLL_RUNS} polls, interleaved"
    )
    print(
        f"load average {load_before:.2f} before, {load_after:.2f} after timing on {os.cpu_count()} CPUs "
        "(well above 1 means other processes competed and p95 is pessimistic)\n"
    )
    print_table(pages)
    if args.sql:
        print_sql(pages)

    missed = [m for page in pages for m in page.misses()]
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    print(f"targets missed: {', '.join(missed)}" if missed else "targets met")
    static_root.cleanup()


if __name__ == "__main__":
    main()
