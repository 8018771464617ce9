"""Many people clicking at once on real PostgreSQL: one change, one timeline row, no deadlock."""

from __future__ import annotations

import pytest

from incidents import services
from incidents.lifecycle import ActionRefused
from incidents.models import EventKind, Severity, Status, TimelineEvent
from tests.concurrency import THREADS, race
from tests.incidents.factories import declare, make_user


@pytest.mark.django_db(transaction=True)
def test_simultaneous_acknowledgements_record_one(responder):
    incident = declare(responder, severity=Severity.SEV1)
    people = [make_user(role="responder") for _ in range(THREADS)]
    results = race(lambda i: services.incident_acknowledge(incident=incident.pk, actor=people[i]))
    assert not [r for r in results if isinstance(r, Exception)]
    assert TimelineEvent.objects.filter(incident=incident, kind=EventKind.ACKNOWLEDGED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_simultaneous_conflicting_moves_make_exactly_one_change(responder):
    incident = declare(responder, severity=Severity.SEV3)
    services.incident_acknowledge(incident=incident, actor=responder)
    targets = [Status.INVESTIGATING, Status.MITIGATING] * (THREADS // 2)
    results = race(
        lambda i: services.incident_change_status(
            incident=incident.pk, actor=responder, to_status=targets[i], from_status=Status.TRIAGE
        )
    )
    errors = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(e, ActionRefused) for e in errors), errors
    assert TimelineEvent.objects.filter(incident=incident, kind=EventKind.STATUS_CHANGED).count() == 1
    # Those who clicked the winning move saw no error; the others were told it moved.
    assert len(errors) == THREADS // 2
