"""Post-mortem editor benchmark: the autosave of a 50 KB document and the live preview's render, with
1,000 post-mortems and 20,000 revisions in the database.

Run from the repository root:  .venv/bin/python bench/postmortems.py

It uses its own PostgreSQL database (DATABASE_URL with the name replaced by cdb_console_bench_pm,
dropped and recreated on every run). 1,000 resolved incidents with their post-mortems and 20 revisions
each (20,000) are bulk-inserted; a lead is logged in through django.test.Client and, on one post-mortem,
times in-process (server time = wall time of Client.post, no network, no browser):

- an autosave of a 50 KB Markdown document (htmx request, the newest base): target p95 ≤ 100 ms;
- the preview of the same document (Markdown → sanitized HTML), a different section changed on each
  request as when someone types (the renderer re-renders only the changed section): target p95 ≤ 50 ms;
- the preview of a whole document never seen before, for information;
- an explicit save (a new revision each time), and the same preview request with an empty document
  (what the request costs without any Markdown: session, user, permissions, the post-mortem), for
  information.

The last line is `targets met` or `targets missed: <which>`; the exit code is 0 either way.
"""

from __future__ import annotations

import io
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import bench_database_urls, recreate_database, setup_django  # noqa: E402

BENCH_DB = "cdb_console_bench_pm"
POSTMORTEMS = 1_000
REVISIONS_EACH = 20
DOC_BYTES = 50_000
AUTOSAVE_P95_MS = 100.0
PREVIEW_P95_MS = 50.0
WARMUP = 10
RUNS = 200
SEED = 20_261_202


def row(label: str, value: str, target: str) -> str:
    return f"{label:<42} {value:>12}   {target:<16}"


SECTIONS = (
    "Summary", "Timeline", "Root Cause", "Impact", "What Went Well", "What Went Poorly", "Action Items",
    "Lessons Learned",
)  # fmt: skip


def document(rng: random.Random, size: int) -> str:
    """A post-mortem in the template's layout (its eight sections), each padded with realistic
    Markdown (prose, timeline lists, links, tables) to about `size` bytes in all."""
    words = ["order", "risk", "exchange", "latency", "halted", "resumed", "limit", "retry", "deploy", "queue"]
    head = "# Incident Post-Mortem: Orders rejected\n\n**Date:** 2026-03-02\n**Severity:** SEV-1\n"
    each = (size - len(head)) // len(SECTIONS)
    parts = [head]
    for name in SECTIONS:
        section = [f"\n## {name}\n"]
        n = 0
        while sum(map(len, section)) < each:
            n += 1
            section.append(" ".join(rng.choice(words) for _ in range(40)) + " **bold** and `code`.\n\n")
            section.append(
                f"- {n % 24:02d}:{n % 60:02d} - {rng.choice(words)} [link](https://example.com/{n})\n"
            )
            section.append("\n| Action | Owner |\n|---|---|\n| Fix | @ann |\n\n")
        parts.append("".join(section)[:each])
    return "".join(parts)


def typed(body: str, n: int) -> str:
    """The document after someone typed in one of its sections (a different one each time)."""
    name = SECTIONS[n % len(SECTIONS)]
    return body.replace(f"## {name}\n", f"## {name}\nEdit {n}. ", 1)


def seed(rng: random.Random) -> Any:
    from django.contrib.auth.models import Group, User
    from django.db import transaction
    from django.utils import timezone

    from incidents.models import Incident, IncidentType, Status
    from postmortems.models import PostMortem, PostMortemRevision

    now = timezone.now()
    lead = User.objects.create_user("bench-lead", password="x")
    lead.groups.add(Group.objects.get(name="lead"))
    kind = IncidentType.objects.get(slug="other")
    small = document(rng, 3_000)
    with transaction.atomic():
        incidents = Incident.objects.bulk_create(
            Incident(
                title=f"Bench incident {i}",
                incident_type=kind,
                severity=1,
                status=Status.RESOLVED,
                detected_at=now - timedelta(days=2, minutes=i),
                ack_due_at=now - timedelta(days=2),
                resolved_at=now - timedelta(days=1),
            )
            for i in range(POSTMORTEMS)
        )
        pms = PostMortem.objects.bulk_create(
            PostMortem(
                incident=incident,
                title=incident.title,
                author=lead if i else None,
                created_at=now,
                deadline=now + timedelta(hours=24),
                current_revision=REVISIONS_EACH,
            )
            for i, incident in enumerate(incidents)
        )
        PostMortemRevision.objects.bulk_create(
            (
                PostMortemRevision(
                    postmortem=pm, number=n, body=small, author=lead, created_at=now, base=n - 1 or None
                )
                for pm in pms
                for n in range(1, REVISIONS_EACH + 1)
            ),
            batch_size=2_000,
        )
    return lead, pms[POSTMORTEMS // 2]


def timed(fn: Any, runs: int) -> list[float]:
    for _ in range(WARMUP):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def main() -> None:
    database_url, maintenance_url = bench_database_urls(BENCH_DB, "bench/postmortems.py")
    recreate_database(maintenance_url, BENCH_DB)
    setup_django(database_url)
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from postmortems.models import PostMortem, PostMortemRevision

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("load_playbook", stdout=io.StringIO())
    call_command("collectstatic", verbosity=0, interactive=False)
    rng = random.Random(SEED)
    lead, pm = seed(rng)
    revisions = PostMortemRevision.objects.count()
    print(
        f"{PostMortem.objects.count()} post-mortems, {revisions} revisions seeded in "
        f"{time.perf_counter() - started:.1f} s"
    )
    client = Client()
    client.force_login(lead)
    body = document(rng, DOC_BYTES)
    autosave_url = reverse("postmortems:autosave", args=[pm.pk])
    preview_url = reverse("postmortems:preview", args=[pm.pk])
    edit_url = reverse("postmortems:edit", args=[pm.pk])
    counter = iter(range(10**9))
    form = "application/x-www-form-urlencoded"  # what htmx and a browser's form send

    def post(url: str, data: dict[str, Any], **extra: Any) -> Any:
        return client.post(url, urlencode(data), content_type=form, **extra)

    def autosave() -> None:
        response = post(
            autosave_url,
            {"body": f"{body[:-12]}{next(counter):012d}", "base": REVISIONS_EACH},
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 200, response.status_code

    def preview() -> None:
        response = post(preview_url, {"body": typed(body, next(counter))}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200 and len(response.content) > DOC_BYTES // 2, response.status_code

    current = [REVISIONS_EACH]

    def save() -> None:
        response = post(edit_url, {"body": f"{body[:-12]}{next(counter):012d}", "base": current[0]})
        assert response.status_code == 302, response.status_code
        current[0] += 1

    autosaves = timed(autosave, RUNS)
    previews = timed(preview, RUNS)
    cold = timed(lambda: post(preview_url, {"body": f"{next(counter)}\n\n{body}"}), 20)
    floor = timed(lambda: post(preview_url, {"body": ""}, HTTP_HX_REQUEST="true"), 50)
    saves = timed(save, 50)
    assert PostMortemRevision.objects.filter(postmortem=pm).count() == REVISIONS_EACH + WARMUP + 50
    print(row("measure", "value", "target"))
    print("-" * 76)
    print(row("autosave 50 KB, p95", f"{p95(autosaves):.1f} ms", f"≤ {AUTOSAVE_P95_MS:.0f} ms"))
    print(row("autosave 50 KB, median", f"{statistics.median(autosaves):.1f} ms", ""))
    print(row("preview 50 KB, p95", f"{p95(previews):.1f} ms", f"≤ {PREVIEW_P95_MS:.0f} ms"))
    print(row("preview 50 KB, median", f"{statistics.median(previews):.1f} ms", ""))
    print(row("preview 50 KB never seen, p95", f"{p95(cold):.1f} ms", "(information)"))
    print(
        row(
            "preview of nothing, median (request floor)",
            f"{statistics.median(floor):.1f} ms",
            "(information)",
        )
    )
    print(row("explicit save 50 KB (new revision), p95", f"{p95(saves):.1f} ms", "(information)"))
    missed = []
    if p95(autosaves) > AUTOSAVE_P95_MS:
        missed.append(f"autosave p95 {p95(autosaves):.1f} ms > {AUTOSAVE_P95_MS:.0f} ms")
    if p95(previews) > PREVIEW_P95_MS:
        missed.append(f"preview p95 {p95(previews):.1f} ms > {PREVIEW_P95_MS:.0f} ms")
    print("targets met" if not missed else "targets missed: " + "; ".join(missed))


if __name__ == "__main__":
    main()
