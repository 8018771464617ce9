"""A playbook proposal from a lesson to the playbook in force, through the services, on real
PostgreSQL; and every refusal on the way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from incidents.models import PlaybookVersion, Severity, SeverityLevel
from incidents.playbook import (
    current_version,
    parse_playbook_yaml,
    playbook_yaml,
)
from playbookreview import selectors, services
from playbookreview.models import PlaybookProposal, PlaybookProposalRevision
from postmortems import review
from postmortems import services as postmortems
from postmortems.review import ReviewRefused
from tests.concurrency import race
from tests.incidents.factories import declare, make_user
from tests.playbookreview.factories import (
    adopt,
    assign,
    changed_yaml,
    in_review,
    proposal,
    save,
    sev3_in_30_minutes,
    sev3_in_60_minutes,
    sev4_escalates_at_5_minutes,
)
from tests.postmortems.factories import postmortem

pytestmark = pytest.mark.django_db

LESSON = "SEV-3 incidents need a first look within 30 minutes, not four hours."


def test_a_postmortem_lesson_becomes_the_playbook_in_force():
    v1 = current_version()
    pm = postmortem(1)
    assert pm.author is not None
    body = pm.revisions.get(number=1).body.replace("[Key takeaways]", LESSON)
    postmortems.revision_save(postmortem=pm, actor=pm.author, body=body, base=1)
    pm.refresh_from_db()
    author = make_user(role="responder")
    initial = selectors.initial_from_postmortem(pm)
    assert LESSON in initial["reason"] and pm.incident.reference in initial["reason"]

    p = services.proposal_create(actor=author, postmortem=pm, **initial)
    assert (p.base_version, p.yaml, p.current_revision, p.postmortem) == (v1, v1.yaml, 1, pm)
    before = declare(author, severity=Severity.SEV3, title="Declared under version 1")

    save(p, changed_yaml(sev3_in_30_minutes), note="SEV-3 in 30 minutes")
    reviewer, approver = in_review(p)
    assert (p.status, p.current_revision) == ("in_review", 2)
    comment = services.proposal_comment(proposal=p, actor=reviewer, section="severities", body="30 is right")
    assert (comment.section, comment.revision) == ("severities", 2)
    services.proposal_signoff(proposal=p, actor=reviewer)
    p = services.proposal_approve(proposal=p, actor=approver)

    v2 = current_version()
    assert v2 is not None and v2.number == 2
    assert (v2.source, v2.created_by, p.adopted_version, p.status) == (
        f"proposal:{p.pk}",
        approver,
        v2,
        "approved",
    )
    assert v2.source_proposal_id == p.pk
    assert v2.note == f"{p.title}\n\n{p.reason}"
    assert v2.document["severities"][2]["response_minutes"] == 30
    assert SeverityLevel.objects.get(level=3).response_minutes == 30
    assert [(s.role, s.user, s.revision) for s in review.signoffs_of(p)] == [
        ("author", author, 2),
        ("reviewer", reviewer, 2),
        ("approver", approver, 2),
    ]
    assert list(p.events.values_list("kind", flat=True)) == [
        "created",
        "saved",
        "assigned",
        "submitted",
        "signed_off",
        "approved",
        "adopted",
    ]

    # Incidents keep the playbook they started with; those declared after use the new version.
    after = declare(author, severity=Severity.SEV3, title="Declared under version 2")
    before.refresh_from_db()
    assert before.playbook_version == v1 and after.playbook_version == v2
    assert before.ack_due_at - before.detected_at == timedelta(minutes=240)
    assert after.ack_due_at - after.detected_at == timedelta(minutes=30)


def test_approving_twice_adopts_once():
    p = proposal()
    _, approver = in_review(p)
    first = services.proposal_approve(proposal=p, actor=approver)
    again = services.proposal_approve(proposal=p, actor=approver)
    assert first.adopted_version == again.adopted_version
    assert PlaybookVersion.objects.count() == 2


# --- Who may do what ---------------------------------------------------------------------------


def test_the_approver_is_never_the_author_by_the_service():
    lead = make_user(role="lead")  # a keeper, so only the authorship refuses it
    p = proposal(author=lead)
    with pytest.raises(ReviewRefused, match="own document"):
        services.proposal_assign(proposal=p, actor=lead, reviewers=[], approver=lead)
    p.refresh_from_db()
    assert p.approver is None


def test_the_approver_is_never_the_author_by_the_database():
    p = proposal()
    with pytest.raises(IntegrityError), transaction.atomic():
        PlaybookProposal.objects.filter(pk=p.pk).update(approver=p.author)


def test_only_an_approved_proposal_holds_an_adopted_version_by_the_database():
    p = proposal()
    with pytest.raises(IntegrityError), transaction.atomic():
        PlaybookProposal.objects.filter(pk=p.pk).update(adopted_version=current_version())


def test_the_approver_is_a_playbook_keeper():
    p = proposal()
    with pytest.raises(services.ProposalRefused, match="lead or an admin"):
        services.proposal_assign(
            proposal=p, actor=p.author, reviewers=[], approver=make_user(role="responder")
        )


def test_only_assigned_people_comment_and_only_the_approver_approves():
    p = proposal()
    reviewer, approver = in_review(p)
    outsider = make_user(role="lead")
    with pytest.raises(ReviewRefused, match="assigned reviewers"):
        services.proposal_comment(proposal=p, actor=outsider, section="Reason", body="Hm")
    with pytest.raises(ReviewRefused, match="assigned reviewers"):
        services.proposal_comment(proposal=p, actor=p.author, section="Reason", body="Mine")
    for someone in (reviewer, outsider, p.author):
        with pytest.raises(services.ProposalRefused, match="assigned approver"):
            services.proposal_approve(proposal=p, actor=someone)
    assert current_version().number == 1
    # A comment names a real section: the reason, or one of the proposed playbook's sections.
    with pytest.raises(services.ProposalRefused, match="Unknown section"):
        services.proposal_comment(proposal=p, actor=reviewer, section="weather", body="?")
    assert services.proposal_comment(proposal=p, actor=approver, section="Reason", body="ok").pk


def test_an_approver_who_lost_the_keeper_role_cannot_approve():
    p = proposal()
    _, approver = in_review(p)
    approver.groups.clear()
    approver = type(approver).objects.get(pk=approver.pk)  # no cached permissions
    with pytest.raises(services.ProposalRefused, match="assigned approver"):
        services.proposal_approve(proposal=p, actor=approver)


def test_only_the_author_and_keepers_edit():
    p = proposal()
    other = make_user(role="responder")
    with pytest.raises(services.ProposalRefused, match="Only the author"):
        save(p, changed_yaml(sev3_in_60_minutes), actor=other)
    lead = make_user(role="lead")
    saved = save(p, changed_yaml(sev3_in_60_minutes), actor=lead)
    assert (saved.number, saved.author) == (2, lead)


# --- Saving ------------------------------------------------------------------------------------


def test_each_save_is_a_new_revision_and_the_same_text_writes_nothing():
    p = proposal()
    text = changed_yaml(sev3_in_60_minutes)
    second = save(p, text, note="60 is enough")
    p.refresh_from_db()
    again = save(p, text)
    p.refresh_from_db()
    assert second.pk == again.pk and p.current_revision == 2 and p.yaml == text
    assert list(p.revisions.values_list("number", "note")) == [
        (2, "60 is enough"),
        (1, "Written against version 1"),
    ]


def test_a_save_on_an_older_revision_is_refused_not_overwritten():
    p = proposal()
    theirs = changed_yaml(sev3_in_60_minutes)
    save(p, theirs, base=1)
    mine = changed_yaml(sev4_escalates_at_5_minutes)
    with pytest.raises(services.Conflict) as refused:
        save(p, mine, base=1)
    assert (refused.value.base, refused.value.theirs.number) == (1, 2)
    p.refresh_from_db()
    assert (p.current_revision, p.yaml) == (2, theirs)
    assert PlaybookProposalRevision.objects.filter(proposal=p).count() == 2
    # The same text as the newest revision, sent again from the older base: a double click.
    assert save(p, theirs, base=1).number == 2


def test_an_invalid_playbook_is_refused_with_every_error_and_nothing_is_written():
    p = proposal()
    doc = parse_playbook_yaml(p.yaml)
    doc["severities"][2]["response_minutes"] = 0
    doc["severities"][0]["colour"] = "red"
    with pytest.raises(services.InvalidPlaybook) as refused:
        save(p, playbook_yaml(doc))
    assert refused.value.errors == [
        "severities[0].colour: unknown field (expected level, name, description, response_minutes, examples, "
        "kill_switch_default, commander_required, pre_recovery_required, monitoring_minutes)",
        "severities[2].response_minutes: must be a positive integer",
    ]
    with pytest.raises(
        services.InvalidPlaybook, match=r"line 3, column 1: did not find expected .,. or .\]."
    ):
        save(p, "severities:\n  - level: [1\n")
    p.refresh_from_db()
    assert p.current_revision == 1


def test_an_adopted_proposal_is_never_edited_again():
    p = proposal()
    _, approver = in_review(p)
    services.proposal_approve(proposal=p, actor=approver)
    p.refresh_from_db()
    with pytest.raises(services.ProposalRefused, match="adopted"):
        save(p, changed_yaml(sev3_in_60_minutes))
    assert not selectors.may_edit(make_user(role="lead"), p)


def test_editing_a_proposal_in_review_sends_it_back_to_draft():
    p = proposal()
    in_review(p)
    save(p, changed_yaml(sev3_in_60_minutes))
    p.refresh_from_db()
    assert p.status == "draft"
    assert p.events.filter(kind="reopened").exists()


# --- Submitting and approving against the version in force -------------------------------------


def test_a_proposal_that_changes_nothing_is_not_submitted():
    p = proposal(yaml_text=None)  # the version in force's text, as a new proposal starts
    assign(p)
    with pytest.raises(services.ProposalRefused, match="proposes no change"):
        services.proposal_submit(proposal=p, actor=p.author)
    p.refresh_from_db()
    assert p.status == "draft"


def test_approval_is_refused_when_the_playbook_moved_on():
    p = proposal()
    _, approver = in_review(p)
    v2 = adopt(sev4_escalates_at_5_minutes)
    with pytest.raises(services.ProposalRefused, match="moved on: version 2 is in force") as refused:
        services.proposal_approve(proposal=p, actor=approver)
    assert "Rebase it on version 2" in str(refused.value)
    p.refresh_from_db()
    assert (p.status, p.adopted_version, p.approved_revision) == ("in_review", None, None)
    assert current_version() == v2
    assert SeverityLevel.objects.get(level=3).response_minutes == 240
    assert [s.role for s in review.signoffs_of(p)] == ["author"]  # from the submission only


def test_a_proposal_behind_the_version_in_force_is_not_submitted():
    p = proposal()
    assign(p)
    adopt(sev4_escalates_at_5_minutes)
    with pytest.raises(services.ProposalRefused, match="moved on"):
        services.proposal_submit(proposal=p, actor=p.author)


# --- Rebasing ----------------------------------------------------------------------------------


def test_a_rebase_applies_the_proposal_on_the_version_in_force():
    p = proposal(sev3_in_30_minutes)
    _, approver = in_review(p)
    v2 = adopt(sev4_escalates_at_5_minutes)
    rebased = services.proposal_rebase(proposal=p, actor=p.author)
    p.refresh_from_db()
    doc = parse_playbook_yaml(p.yaml)
    assert (p.base_version, p.current_revision, rebased.base_version, p.status) == (v2, 2, v2, "draft")
    assert doc["severities"][2]["response_minutes"] == 30  # the proposal's change
    assert doc["escalation"][3]["steps"][0]["after_minutes"] == 5  # version 2's change
    assert "Rebased from version 1 on version 2" in rebased.note
    # A second click finds it based on the version in force: nothing new.
    assert services.proposal_rebase(proposal=p, actor=p.author).number == 2

    services.proposal_submit(proposal=p, actor=p.author)
    services.proposal_approve(proposal=p, actor=approver)
    v3 = current_version()
    assert v3.number == 3 and v3.source == f"proposal:{p.pk}"
    assert v3.document["severities"][2]["response_minutes"] == 30
    assert v3.document["escalation"][3]["steps"][0]["after_minutes"] == 5


def test_a_rebase_with_a_conflict_names_the_sections_and_changes_nothing():
    p = proposal(sev3_in_30_minutes, sev4_escalates_at_5_minutes)
    adopt(sev3_in_60_minutes)
    with pytest.raises(services.ProposalRefused, match="both changed severities") as refused:
        services.proposal_rebase(proposal=p, actor=p.author)
    assert "escalation" not in str(refused.value)
    p.refresh_from_db()
    assert (p.base_version.number, p.current_revision) == (1, 1)


def test_a_rebase_taking_the_version_in_force_keeps_the_rest_of_the_proposal():
    p = proposal(sev3_in_30_minutes, sev4_escalates_at_5_minutes)
    adopt(sev3_in_60_minutes)
    rebased = services.proposal_rebase(proposal=p, actor=p.author, take_current=True)
    doc = parse_playbook_yaml(rebased.yaml)
    assert doc["severities"][2]["response_minutes"] == 60  # version 2's, to be redone
    assert doc["escalation"][3]["steps"][0]["after_minutes"] == 5  # the proposal's, kept
    assert "took version 2's severities" in rebased.note


def test_the_same_change_on_both_sides_is_no_conflict():
    p = proposal(sev3_in_30_minutes)
    assign(p)
    adopt(sev3_in_30_minutes)
    services.proposal_rebase(proposal=p, actor=p.author)
    p.refresh_from_db()
    assert p.events.filter(kind="rebased", text__contains="now proposes no change").exists()
    with pytest.raises(services.ProposalRefused, match="proposes no change"):
        services.proposal_submit(proposal=p, actor=p.author)


@pytest.mark.django_db(transaction=True)
def test_two_proposals_on_one_version_approved_at_once_adopt_one():
    first, second = proposal(sev3_in_30_minutes), proposal(sev4_escalates_at_5_minutes)
    approvers = [in_review(first)[1], in_review(second)[1]]
    results = race(
        lambda i: services.proposal_approve(proposal=[first, second][i], actor=approvers[i]), threads=2
    )
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], services.ProposalRefused), results
    assert "moved on" in str(errors[0])
    assert PlaybookVersion.objects.count() == 2
    assert PlaybookProposal.objects.filter(adopted_version__isnull=False).count() == 1
    assert PlaybookProposal.objects.filter(status="in_review").count() == 1


def test_a_submitted_proposal_asks_its_reviewer_and_approver():
    from notify.models import InboxItem

    p = proposal(sev3_in_30_minutes)
    reviewer, approver = in_review(p)
    items = {i.user_id: i for i in InboxItem.objects.filter(title__startswith="Please ")}
    assert set(items) == {reviewer.pk, approver.pk}
    assert items[approver.pk].title == f"Please approve: {p} (revision {p.current_revision})"
    assert (
        items[approver.pk].incident_id is None and f"/playbook/proposals/{p.pk}/" in items[approver.pk].body
    )
