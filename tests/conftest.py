from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from tests.incidents.factories import UserFactory, declare


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # Real hashing is deliberately slow; tests check permissions, not key stretching.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _playbook(db: None) -> None:
    """Every test sees the playbook loaded, as `make run` leaves it."""
    call_command("load_playbook", verbosity=0)


@pytest.fixture
def viewer() -> Any:
    return UserFactory(username="viewer", role="viewer")


@pytest.fixture
def responder() -> Any:
    return UserFactory(username="responder", role="responder")


@pytest.fixture
def lead() -> Any:
    return UserFactory(username="lead", role="lead")


@pytest.fixture
def executive() -> Any:
    return UserFactory(username="executive", role="executive")


@pytest.fixture
def admin_user() -> Any:
    return UserFactory(username="admin", role="admin", is_staff=True)


@pytest.fixture
def norole() -> Any:
    return UserFactory(username="norole")


@pytest.fixture
def incident(responder: Any) -> Any:
    return declare(responder, title="cdb_risk health is error")


@pytest.fixture
def commander(incident: Any, lead: Any) -> Any:
    """A responder who commands `incident` (and so holds its object permissions)."""
    from incidents import services

    user = UserFactory(username="commander", role="responder")
    services.incident_assign_commander(incident=incident, actor=lead, commander=user)
    return user
