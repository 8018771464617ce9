from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from incidents import services
from incidents.models import Incident, IncidentType, Severity

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: Any) -> None:
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))  # type: ignore[attr-defined]


def incident_type(slug: str = "other") -> IncidentType:
    return IncidentType.objects.get(slug=slug)


def declare(
    actor: Any = None, *, severity: int = Severity.SEV3, type_slug: str = "other", **kwargs: Any
) -> Incident:
    """Incidents are created through the service, as in production (checklists and timeline included)."""
    if actor is None:
        actor = UserFactory(role="responder")
    kwargs.setdefault("title", "Something is wrong")
    return services.incident_declare(
        actor=actor, incident_type=incident_type(type_slug), severity=severity, **kwargs
    )
