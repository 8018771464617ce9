"""Reads every app shares: the console's own liveness (how old its data is, and which jobs fail)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from console.models import Heartbeat

# The jobs shown first in the tooltip even before they ever ran; the others appear once they have.
EXPECTED_JOBS = ("health", "prometheus")
ROLE_PERMISSION = "incidents.view_incident"  # every role holds it; a login without a role sees nothing


# How often periodic jobs run, by name (or name prefix), as apps declare it in AppConfig.ready. A
# declared job whose last run, good or failed, is older than two intervals is overdue and shown as
# failing while the others run: a run that died without a word (a killed worker, a time limit).
_schedules: dict[str, Callable[[], float]] = {}


def expect_job(prefix: str, every: Callable[[], float]) -> None:
    """Declare that the job `prefix` (and every job named `prefix <something>`) runs every `every()` s."""
    _schedules[prefix] = every


def _interval(name: str) -> float | None:
    for prefix, every in _schedules.items():
        if name == prefix or name.startswith(prefix + " "):
            return float(every())
    return None


def age_text(seconds: float) -> str:
    """A short, rounded age: '4 s', '3 min', '2 h', '5 d'."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} d"


def age_since(then: datetime | None, now: datetime) -> str:
    return age_text(max(0.0, (now - then).total_seconds())) if then is not None else ""


@dataclass(frozen=True)
class Job:
    name: str
    last_seen: datetime | None
    age: str
    failing: bool = False
    error: str = ""
    failing_since: datetime | None = None  # the first failure since the last success
    failing_for: str = ""  # its age: "3 min"


@dataclass(frozen=True)
class Liveness:
    """How old the console's data is: the age of the newest successful periodic-job run (health
    poll, rule evaluation, kill-switch reconcile, alert routing). They all stop together when beat or
    the workers stop. A job whose latest run failed is named, whatever the others do."""

    newest: datetime | None
    age_seconds: float | None
    stale_after: float
    jobs: list[Job]

    @property
    def never(self) -> bool:
        return self.newest is None

    @property
    def stale(self) -> bool:
        return self.age_seconds is None or self.age_seconds > self.stale_after

    @property
    def failing(self) -> list[Job]:
        return [j for j in self.jobs if j.failing]

    @property
    def state(self) -> str:
        if self.never:
            return "never"
        if self.stale:
            return "stale"
        return "failing" if self.failing else "fresh"

    @property
    def age(self) -> str:
        return age_text(self.age_seconds) if self.age_seconds is not None else ""

    @property
    def detail(self) -> str:
        """Each job's age, for the tooltip: 'health 4 s ago · prometheus never · kill switch production
        3 s ago (failing: ...)'."""
        return " · ".join(
            f"{j.name} {j.age + ' ago' if j.age else 'never'}"
            + (f" (failing: {j.error})" if j.failing else "")
            for j in self.jobs
        )


def stale_after_seconds() -> float:
    """About three runs of the slowest schedule, and never less than 30 s."""
    slowest = max(
        float(settings.HEALTH_POLL_SECONDS),
        float(settings.PROMETHEUS_EVAL_SECONDS),
        float(settings.KILLSWITCH_RECONCILE_SECONDS),
    )
    return max(30.0, 3 * slowest)


def liveness(*, now: datetime | None = None) -> Liveness:
    """The data age and the failing jobs, in one query."""
    now = now or timezone.now()
    rows = {h.name: h for h in Heartbeat.objects.all()}
    names = [*EXPECTED_JOBS, *sorted(n for n in rows if n not in EXPECTED_JOBS)]
    jobs = []
    for name in names:
        row = rows.get(name)
        last = row.last_seen if row else None
        failing, error = bool(row and row.failing), row.last_error if row else ""
        since = (row.failing_since or row.failed_at) if row and failing else None
        every = _interval(name)
        ran = max((t for t in (last, row.failed_at if row else None) if t is not None), default=None)
        if every is not None and ran is not None and (now - ran).total_seconds() > 2 * every:
            failing, error, since = True, f"overdue: no run for {age_since(ran, now)}", since or ran
        jobs.append(
            Job(
                name=name,
                last_seen=last,
                age=age_since(last, now),
                failing=failing,
                error=error,
                failing_since=since,
                failing_for=age_since(since, now),
            )
        )
    newest = max((j.last_seen for j in jobs if j.last_seen is not None), default=None)
    return Liveness(
        newest=newest,
        age_seconds=max(0.0, (now - newest).total_seconds()) if newest is not None else None,
        stale_after=stale_after_seconds(),
        jobs=jobs,
    )


def has_role(user: Any) -> bool:
    """Logged in and holding one of the roles: what the top bar's live parts need."""
    return bool(getattr(user, "is_authenticated", False) and user.has_perm(ROLE_PERMISSION))
