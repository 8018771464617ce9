"""Many people at the kill switch at once, on real PostgreSQL.

Threads released together by a barrier activate, request, approve and reject: exactly one
transition per real change, one audit record per transition, an intact audit chain, and no
deadlock (every thread finishes; PostgreSQL's own deadlock detection would surface as an error).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from killswitch import audit
from killswitch.backends import Condition, FileBackend
from killswitch.models import Action, AuditRecord, ResumeRequest, ResumeStatus, TargetState
from killswitch.services import (
    KillSwitchRefused,
    Outcome,
    ReauthRequired,
    killswitch_activate,
    killswitch_approve_resume,
    killswitch_reject_resume,
    killswitch_request_resume,
    resume_requests_expire,
)
from tests.concurrency import THREADS, race
from tests.incidents.factories import make_user

# Kill-switch changes; granting a role (making a test user) writes permission records too.
CHANGES = [
    Action.ACTIVATED,
    Action.RESUME_REQUESTED,
    Action.RESUME_APPROVED,
    Action.RESUME_REJECTED,
    Action.RESUME_EXPIRED,
    Action.EXTERNAL_CHANGE,
]
JUSTIFICATION = "Root cause fixed and verified on the exchange adapter; safe to resume."
DOMAIN_ERRORS = (KillSwitchRefused, ReauthRequired, PermissionDenied)


def _audit(action: str, target: str | None = None) -> int:
    records = AuditRecord.objects.filter(action=action)
    if target is not None:
        records = records.filter(target=target)
    return records.count()


def _assert_chain_intact() -> None:
    checked, findings = audit.verify()
    assert findings == [], [str(f) for f in findings]
    assert checked == AuditRecord.objects.count()


@pytest.fixture
def files(settings: Any, tmp_path: Path) -> dict[str, FileBackend]:
    """Two file targets in tmp_path, both trading; production first."""
    paths = {name: tmp_path / name[0] / ".cdb_kill_switch.state" for name in ("production", "drill")}
    settings.KILLSWITCH_TARGETS = ";".join(f"{name}=file:{path}" for name, path in paths.items())
    backends = {}
    for name, path in paths.items():
        path.parent.mkdir(parents=True)
        backends[name] = FileBackend(path)
        assert backends[name].deactivate(operator="setup", justification="initial state for tests").trading
    return backends


def _halt(target: str) -> None:
    outcome = killswitch_activate(
        target=target, actor=make_user(role="responder"), reason="manual", message="setup"
    )
    assert outcome.changed


# --- One action, many hands ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("row_exists", [True, False], ids=["row-exists", "first-use"])
def test_simultaneous_activations_halt_once(files: dict[str, FileBackend], row_exists: bool) -> None:
    """With the target's row already there, the row lock serialises; on first use, the insert does."""
    if row_exists:
        TargetState.objects.create(target="production")
    responders = [make_user(role="responder") for _ in range(THREADS)]

    results = race(
        lambda i: killswitch_activate(
            target="production", actor=responders[i], reason="manual", message=f"halt from thread {i}"
        )
    )

    assert all(isinstance(r, Outcome) for r in results), results
    outcomes = [r for r in results if isinstance(r, Outcome)]
    winners = [o for o in outcomes if o.changed]
    assert len(winners) == 1, [o.message for o in outcomes]
    assert all(o.state.halted for o in outcomes)
    assert _audit(Action.ACTIVATED) == 1
    # The first action on a target the console has never observed records that first look, once.
    assert _audit(Action.EXTERNAL_CHANGE) == 1
    record = AuditRecord.objects.get(action=Action.ACTIVATED)
    winner = responders[outcomes.index(winners[0])]
    assert (record.actor_id, record.target) == (winner.pk, "production")
    assert record.state_before["condition"] == Condition.TRADING
    assert record.state_after["condition"] == Condition.HALTED
    state = files["production"].read()
    assert state.halted
    assert state.message.endswith(f"(operator: {winner.username})")
    assert TargetState.objects.get(target="production").condition == Condition.HALTED
    assert files["drill"].read().trading
    _assert_chain_intact()


@pytest.mark.django_db(transaction=True)
def test_simultaneous_resume_requests_file_one(files: dict[str, FileBackend]) -> None:
    _halt("production")
    leads = [make_user(role="lead") for _ in range(THREADS)]

    results = race(
        lambda i: killswitch_request_resume(target="production", actor=leads[i], justification=JUSTIFICATION)
    )

    created = [r for r in results if isinstance(r, ResumeRequest)]
    refused = [r for r in results if isinstance(r, KillSwitchRefused)]
    assert len(created) == 1, results
    assert len(refused) == THREADS - 1, results
    assert all("already waiting for approval" in str(e) for e in refused)
    pending = ResumeRequest.objects.get(status=ResumeStatus.PENDING)
    assert pending.pk == created[0].pk
    assert ResumeRequest.objects.count() == 1
    assert _audit(Action.RESUME_REQUESTED) == 1
    assert AuditRecord.objects.get(action=Action.RESUME_REQUESTED).request_id == pending.pk
    assert files["production"].read().halted
    _assert_chain_intact()


@pytest.mark.django_db(transaction=True)
def test_simultaneous_approvals_resume_once(files: dict[str, FileBackend]) -> None:
    _halt("production")
    request = killswitch_request_resume(
        target="production", actor=make_user(role="lead"), justification=JUSTIFICATION
    )
    approvers = [make_user(role="lead") for _ in range(THREADS)]

    results = race(
        lambda i: killswitch_approve_resume(request_id=request.pk, actor=approvers[i], reauthenticated=True)
    )

    outcomes = [r for r in results if isinstance(r, Outcome)]
    refused = [r for r in results if isinstance(r, KillSwitchRefused)]
    assert len(outcomes) == 1, results
    assert len(refused) == THREADS - 1, results
    assert outcomes[0].changed and outcomes[0].state.trading
    winner = approvers[results.index(outcomes[0])]
    request.refresh_from_db()
    assert (request.status, request.decided_by_id) == (ResumeStatus.APPROVED, winner.pk)
    assert _audit(Action.RESUME_APPROVED) == 1
    assert AuditRecord.objects.get(action=Action.RESUME_APPROVED).actor_id == winner.pk
    assert files["production"].read().trading
    assert TargetState.objects.get(target="production").condition == Condition.TRADING
    _assert_chain_intact()


@pytest.mark.django_db(transaction=True)
def test_simultaneous_expiry_records_once(files: dict[str, FileBackend]) -> None:
    _halt("drill")
    request = killswitch_request_resume(
        target="drill", actor=make_user(role="lead"), justification=JUSTIFICATION
    )
    ResumeRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    results = race(lambda i: resume_requests_expire())

    assert Counter(results) == {1: 1, 0: THREADS - 1}, results
    request.refresh_from_db()
    assert request.status == ResumeStatus.EXPIRED
    assert _audit(Action.RESUME_EXPIRED) == 1
    _assert_chain_intact()


# --- Everything at once, on two targets ---------------------------------------------------------

STORM_THREADS = 16
ROUNDS = 6
TARGETS = ("production", "drill")


class Storm:
    """Each thread plays a few people and makes one call per round, all threads' calls in a round
    released together; every call's outcome is logged as (kind, target, result)."""

    def __init__(self) -> None:
        self.rounds = threading.Barrier(STORM_THREADS)
        self.log: list[list[tuple[str, str, object]]] = [[] for _ in range(STORM_THREADS)]
        self.people = [
            {
                "responder": make_user(role="responder"),
                "lead": make_user(role="lead"),
                # last_login is None: approving without a fresh password must be refused
                "stale_lead": make_user(role="lead"),
            }
            for _ in range(STORM_THREADS)
        ]

    @staticmethod
    def pending(target: str) -> int | None:
        return (
            ResumeRequest.objects.filter(target=target, status=ResumeStatus.PENDING)
            .values_list("pk", flat=True)
            .first()
        )

    def act(self, i: int, kind: str, target: str) -> object:
        me = self.people[i]
        if kind == "activate":
            actor = me["responder"] if i % 2 else me["lead"]
            return killswitch_activate(target=target, actor=actor, reason="risk_limit", message=f"t{i}")
        if kind == "request":
            return killswitch_request_resume(target=target, actor=me["lead"], justification=JUSTIFICATION)
        if kind == "request_unauthorised":
            return killswitch_request_resume(
                target=target, actor=me["responder"], justification=JUSTIFICATION
            )
        pk = self.pending(target)
        if pk is None:
            return None  # nothing pending to decide right now
        if kind == "approve":
            return killswitch_approve_resume(request_id=pk, actor=me["lead"], reauthenticated=True)
        if kind == "approve_stale":
            return killswitch_approve_resume(request_id=pk, actor=me["stale_lead"])
        if kind == "reject":
            return killswitch_reject_resume(request_id=pk, actor=me["lead"], note=f"not yet (t{i})")
        raise AssertionError(kind)

    def plan(self, i: int) -> list[tuple[str, str]]:
        # Round 0 has no rejection and approvers for both targets (threads 0, 4, 12 on production,
        # 6, 10 on drill): each target's pending request can only be approved, so at least one real
        # change per target happens whatever the interleaving. Later rounds are random (seeded).
        first = ["approve", "activate", "request", "approve_stale", "approve", "request_unauthorised"]
        kinds = ["activate", "request", "approve", "reject", "approve_stale", "request_unauthorised"]
        weights = [4, 3, 4, 2, 1, 1]
        rng = random.Random(1000 + i)
        steps = [(first[i % len(first)], TARGETS[i // len(first) % 2])]
        steps += [(rng.choices(kinds, weights)[0], rng.choice(TARGETS)) for _ in range(ROUNDS - 1)]
        return steps

    def run(self, i: int) -> None:
        for n, (kind, target) in enumerate(self.plan(i)):
            if n:
                self.rounds.wait(timeout=30)  # the previous round is over for everyone
            try:
                result: object = self.act(i, kind, target)
            except Exception as exc:  # classified below
                result = exc
            self.log[i].append((kind, target, result))

    def results(self) -> list[tuple[str, str, object]]:
        return [entry for entries in self.log for entry in entries]


@pytest.mark.django_db(transaction=True)
def test_mixed_storm_on_two_targets(files: dict[str, FileBackend]) -> None:
    for target in TARGETS:
        _halt(target)
        killswitch_request_resume(target=target, actor=make_user(role="lead"), justification=JUSTIFICATION)
    storm = Storm()
    baseline = AuditRecord.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    finished = race(storm.run, threads=STORM_THREADS, timeout=120)

    assert finished == [None] * STORM_THREADS, finished  # no thread broke off (a broken barrier)
    results = storm.results()
    assert len(results) == STORM_THREADS * ROUNDS
    unexpected = [
        (kind, target, r)
        for kind, target, r in results
        if isinstance(r, Exception) and not isinstance(r, DOMAIN_ERRORS)
    ]
    assert not unexpected, unexpected
    for kind, _target, r in results:
        if kind == "approve_stale" and r is not None:
            assert isinstance(r, KillSwitchRefused), r  # ReauthRequired, or refused as its own request
        if kind == "request_unauthorised":
            assert isinstance(r, PermissionDenied), r

    # What the threads saw succeed, per target.
    seen: Counter[tuple[str, str]] = Counter()
    for kind, target, r in results:
        if kind == "activate" and isinstance(r, Outcome) and r.changed:
            seen[Action.ACTIVATED, target] += 1
        elif kind == "approve" and isinstance(r, Outcome):
            assert r.changed and r.state.trading
            seen[Action.RESUME_APPROVED, target] += 1
        elif kind == "request" and isinstance(r, ResumeRequest):
            seen[Action.RESUME_REQUESTED, target] += 1
        elif kind == "reject" and isinstance(r, ResumeRequest):
            assert r.status == ResumeStatus.REJECTED
            seen[Action.RESUME_REJECTED, target] += 1
        elif kind == "activate":
            assert isinstance(r, Outcome) and r.state.halted, r  # already halted: told so, unchanged

    # What the audit says happened during the storm: one record per success, nothing else.
    storm_records = list(AuditRecord.objects.filter(seq__gt=baseline).order_by("seq"))
    recorded = Counter((r.action, r.target) for r in storm_records)
    assert recorded == seen, (recorded, seen)
    assert seen[Action.RESUME_APPROVED, "production"] >= 1
    assert seen[Action.RESUME_APPROVED, "drill"] >= 1
    _assert_chain_intact()

    for target in TARGETS:
        # Every transition is a real change that starts where the previous one ended, halted and
        # trading alternating; the file ends where the last transition left it.
        transitions = list(
            AuditRecord.objects.filter(
                target=target, action__in=[Action.ACTIVATED, Action.RESUME_APPROVED]
            ).order_by("seq")
        )
        for previous, current in pairwise(transitions):
            assert current.state_before == previous.state_after, (previous, current)
        for record in transitions:
            expected = (
                (Condition.TRADING, Condition.HALTED)
                if record.action == Action.ACTIVATED
                else (Condition.HALTED, Condition.TRADING)
            )
            assert (record.state_before["condition"], record.state_after["condition"]) == expected
        final = files[target].read()
        assert final.as_dict() == transitions[-1].state_after
        assert TargetState.objects.get(target=target).condition == final.condition

        # The requests agree with the audit: each decided once, at most one still pending.
        statuses = Counter(ResumeRequest.objects.filter(target=target).values_list("status", flat=True))
        assert statuses[ResumeStatus.APPROVED] == _audit(Action.RESUME_APPROVED, target)
        assert statuses[ResumeStatus.REJECTED] == _audit(Action.RESUME_REJECTED, target)
        assert sum(statuses.values()) == _audit(Action.RESUME_REQUESTED, target)
        assert statuses[ResumeStatus.PENDING] <= 1
        if statuses[ResumeStatus.PENDING]:
            assert final.halted  # a pending request is only ever for a halted target
