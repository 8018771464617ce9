from __future__ import annotations

from typing import Any, cast

import factory
from django.contrib.auth.models import Group, User

from incidents import services
from incidents.models import Incident, IncidentType, Severity

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: Any) -> None:
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))  # type: ignore[attr-defined]


def make_user(**kwargs: Any) -> User:
    """A saved user; `role=` names the group (viewer, responder, lead, executive, admin)."""
    return cast(User, UserFactory(**kwargs))


def incident_type(slug: str = "other") -> IncidentType:
    return IncidentType.objects.get(slug=slug)


def declare(
    actor: Any = None, *, severity: int = Severity.SEV3, type_slug: str = "other", **kwargs: Any
) -> Incident:
    """Incidents are created through the service, as in production (checklists and timeline included)."""
    if actor is None:
        actor = make_user(role="responder")
    kwargs.setdefault("title", "Something is wrong")
    return services.incident_declare(
        actor=actor, incident_type=incident_type(type_slug), severity=severity, **kwargs
    )
