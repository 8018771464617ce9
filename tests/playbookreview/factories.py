"""Playbook proposals come from the services, as in production: the factory calls
`proposal_create`, so every proposal has its revision 1, its author's right to edit it and its
activity row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import factory

from incidents.models import PlaybookVersion
from incidents.playbook import current_version, parse_playbook_yaml, playbook_adopt, playbook_yaml
from playbookreview import services
from playbookreview.models import PlaybookProposal
from tests.incidents.factories import UserFactory, make_user

Change = Callable[[dict[str, Any]], None]


def sev3_in_30_minutes(doc: dict[str, Any]) -> None:
    doc["severities"][2]["response_minutes"] = 30


def sev3_in_60_minutes(doc: dict[str, Any]) -> None:
    doc["severities"][2]["response_minutes"] = 60


def sev4_escalates_at_5_minutes(doc: dict[str, Any]) -> None:
    doc["escalation"][3]["steps"][0]["after_minutes"] = 5


def changed_yaml(*changes: Change, text: str | None = None) -> str:
    """The YAML of the version in force (or of `text`) with `changes` applied."""
    if text is None:
        version = current_version()
        assert version is not None
        text = version.yaml
    document = parse_playbook_yaml(text)
    for change in changes:
        change(document)
    return playbook_yaml(document)


def adopt(*changes: Change, note: str = "adopted meanwhile") -> PlaybookVersion:
    """Another version adopted (as admin would), with `changes` to the version in force."""
    return playbook_adopt(
        document=parse_playbook_yaml(changed_yaml(*changes)), note=note, actor=None, source="admin"
    )


class ProposalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlaybookProposal

    author = factory.SubFactory(UserFactory, role="responder")
    title = factory.Sequence(lambda n: f"Playbook change {n}")
    reason = "The last SEV-3 waited four hours for a first look."
    yaml_text = factory.LazyFunction(lambda: changed_yaml(sev3_in_30_minutes))
    postmortem = None
    drill = None

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> PlaybookProposal:
        return services.proposal_create(
            actor=kwargs["author"],
            title=kwargs["title"],
            reason=kwargs["reason"],
            yaml_text=kwargs["yaml_text"],
            postmortem=kwargs["postmortem"],
            drill=kwargs["drill"],
        )


def proposal(*changes: Change, **kwargs: Any) -> PlaybookProposal:
    """A draft proposing `changes` (SEV-3 answered in 30 minutes unless told) to the version in force."""
    if changes:
        kwargs["yaml_text"] = changed_yaml(*changes)
    return cast(PlaybookProposal, ProposalFactory(**kwargs))


def assign(p: PlaybookProposal, *, reviewer: Any = None, approver: Any = None) -> tuple[Any, Any]:
    """A reviewer (a responder) and an approver (a lead), named by the author: (reviewer, approver)."""
    reviewer = reviewer or make_user(role="responder")
    approver = approver or make_user(role="lead")
    assert p.author is not None
    services.proposal_assign(proposal=p, actor=p.author, reviewers=[reviewer], approver=approver)
    p.refresh_from_db()
    return reviewer, approver


def in_review(p: PlaybookProposal, **people: Any) -> tuple[Any, Any]:
    """Assigned and submitted by its author: (reviewer, approver)."""
    reviewer, approver = assign(p, **people)
    assert p.author is not None
    services.proposal_submit(proposal=p, actor=p.author)
    p.refresh_from_db()
    return reviewer, approver


def save(
    p: PlaybookProposal, yaml_text: str, *, actor: Any = None, base: int | None = None, **kw: Any
) -> Any:
    """A save by the author (or `actor`) on the newest revision (or `base`)."""
    actor = actor or p.author
    assert actor is not None
    return services.revision_save(
        proposal=p,
        actor=actor,
        title=kw.get("title", p.title),
        reason=kw.get("reason", p.reason),
        yaml_text=yaml_text,
        base=p.current_revision if base is None else base,
        note=kw.get("note", ""),
    )
