from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from postmortems import export, review, services
from postmortems.models import PostMortem
from postmortems.review import ReviewRefused
from tests.incidents.factories import make_user
from tests.postmortems.factories import in_review, postmortem

pytestmark = pytest.mark.django_db


def test_draft_to_published_fills_the_approval_table_and_the_incidents_timeline(client):
    pm = postmortem(1)
    reviewer, approver = in_review(pm)
    review.review_signoff(document=pm, actor=reviewer)
    review.review_approve(document=pm, actor=approver)
    review.review_publish(document=pm, actor=pm.author)
    pm.refresh_from_db()
    assert (pm.status, pm.published_revision) == ("published", 1)
    assert [(s.role, s.user) for s in review.signoffs_of(pm)] == [
        ("author", pm.author),
        ("reviewer", reviewer),
        ("approver", approver),
    ]
    steps = list(
        pm.incident.events.filter(kind="postmortem").order_by("id").values_list("data__step", flat=True)
    )
    assert steps == ["assigned", "submitted", "signed_off", "approved", "published"]
    table = export.approval_table(pm)
    assert f"| Approver | {approver.username} |" in table and "✅ r1" in table


def test_the_approver_is_never_the_author_by_the_service():
    pm = postmortem(1)
    with pytest.raises(ReviewRefused, match="own document"):
        review.review_assign(document=pm, actor=make_user(role="lead"), reviewers=[], approver=pm.author)


def test_the_approver_is_never_the_author_by_the_database():
    pm = postmortem(1)
    with pytest.raises(IntegrityError), transaction.atomic():
        PostMortem.objects.filter(pk=pm.pk).update(approver=pm.author)


def test_only_assigned_people_comment_and_approve():
    pm = postmortem(1)
    reviewer, _ = in_review(pm)
    outsider = make_user(role="lead")
    with pytest.raises(ReviewRefused):
        review.review_comment_add(document=pm, actor=outsider, section="Summary", body="hm")
    with pytest.raises(ReviewRefused):
        review.review_approve(document=pm, actor=reviewer)
    with pytest.raises(ReviewRefused):
        review.review_approve(document=pm, actor=outsider)
    comment = review.review_comment_add(document=pm, actor=reviewer, section="Root Cause", body="Why?")
    assert comment.section == "Root Cause" and comment.revision == 1


def test_reassigning_takes_the_rights_away():
    pm = postmortem(1)
    reviewer, _ = in_review(pm)
    review.review_assign(document=pm, actor=make_user(role="lead"), reviewers=[], approver=None)
    assert not review.may_review(reviewer, pm)


def test_a_comment_is_resolved_once_by_the_author():
    pm = postmortem(1)
    reviewer, _ = in_review(pm)
    comment = review.review_comment_add(document=pm, actor=reviewer, section="Summary", body="Shorter")
    review.review_comment_resolve(comment=comment, actor=pm.author)
    again = review.review_comment_resolve(comment=comment, actor=reviewer)
    assert again.resolved_by == pm.author
    with pytest.raises(ReviewRefused):
        review.review_comment_resolve(
            comment=review.review_comment_add(document=pm, actor=reviewer, section="Summary", body="x"),
            actor=make_user(role="viewer"),
        )


def test_submitting_needs_an_approver_and_approving_a_second_time_changes_nothing():
    pm = postmortem(1)
    with pytest.raises(ReviewRefused, match="approver"):
        review.review_submit(document=pm, actor=pm.author)
    _, approver = in_review(pm)
    review.review_approve(document=pm, actor=approver)
    review.review_approve(document=pm, actor=approver)
    assert pm.incident.events.filter(kind="postmortem", data__step="approved").count() == 1


def test_the_review_pages_let_reviewer_and_approver_act_by_plain_posts(client):
    pm = postmortem(1)
    reviewer, approver = in_review(pm)
    client.force_login(reviewer)
    page = client.get(reverse("postmortems:detail", args=[pm.pk])).content.decode()
    assert 'data-testid="pm-comment"' in page and 'data-testid="pm-approve"' not in page
    client.post(reverse("postmortems:comment", args=[pm.pk]), {"section": "Impact", "body": "Numbers?"})
    client.force_login(approver)
    assert client.post(reverse("postmortems:approve", args=[pm.pk])).status_code == 302
    client.force_login(pm.author)
    client.post(reverse("postmortems:publish", args=[pm.pk]))
    pm.refresh_from_db()
    assert pm.status == "published"
    exported = client.get(reverse("postmortems:export", args=[pm.pk]))
    assert exported["Content-Disposition"].endswith('.md"')
    text = exported.content.decode()
    assert text.startswith("# Incident Post-Mortem:") and "## Approval" in text


def test_the_published_summary_goes_once_to_the_stakeholders_channel():
    from notify.models import Message

    pm = postmortem(1)
    _, approver = in_review(pm)
    review.review_approve(document=pm, actor=approver)
    review.review_publish(document=pm, actor=approver)
    services.summary_send(postmortem=pm, actor=pm.author)
    services.summary_send(postmortem=pm, actor=pm.author)
    [message] = Message.objects.filter(kind="postmortem_summary")
    assert message.address == "stakeholders" and "Post-mortem of INC-" in message.body


def test_the_action_items_show_on_the_postmortem_and_fill_the_exported_table(client):
    from datetime import date

    from actions.services import action_item_create

    pm = postmortem(1)
    reviewer, approver = in_review(pm)
    action_item_create(
        incident=pm.incident,
        actor=pm.author,
        title="Honour Retry-After | in the executor",
        owner=reviewer,
        due=date(2026, 4, 1),
        tracker_url="https://tracker.example.com/ISSUE-7",
        origin="postmortem",
    )
    client.force_login(pm.author)
    page = client.get(reverse("postmortems:detail", args=[pm.pk])).content.decode()
    assert 'id="action-items"' in page and "Honour Retry-After" in page
    review.review_approve(document=pm, actor=approver)
    review.review_publish(document=pm, actor=approver)
    text = client.get(reverse("postmortems:export", args=[pm.pk])).content.decode()
    section = text.split("## Action Items\n", 1)[1].split("\n## ", 1)[0]
    assert "| Action | Owner | Deadline | Issue |" in section
    assert (
        f"| Honour Retry-After \\| in the executor (Open) | @{reviewer.username} | 2026-04-01 | "
        "https://tracker.example.com/ISSUE-7 |"
    ) in section
    assert "filled from them on export" not in text


def test_submitting_asks_the_reviewers_and_the_approver_once_per_revision():
    from notify.models import InboxItem, Message

    pm = postmortem(1)
    reviewer, approver = in_review(pm, reviewer=make_user(role="responder", email="rita@example.com"))

    def asked() -> list[tuple[str, str]]:
        rows = InboxItem.objects.filter(title__startswith="Please ").order_by("id")
        return [(item.user.get_username(), item.title.split(":")[0]) for item in rows]

    assert asked() == [(reviewer.username, "Please review"), (approver.username, "Please approve")]
    item = InboxItem.objects.get(user=approver)
    assert item.incident_id == pm.incident_id and f"/postmortems/{pm.pk}/" in item.body
    assert Message.objects.filter(address="rita@example.com", kind="reminder").count() == 1
    review.review_submit(document=pm, actor=pm.author)  # a double click asks nobody again
    late = make_user(role="responder")
    review.review_assign(
        document=pm, actor=make_user(role="lead"), reviewers=[reviewer, late], approver=approver
    )
    assert asked()[2:] == [(late.username, "Please review")]
    pm.refresh_from_db()
    body = pm.revisions.get(number=pm.current_revision).body
    services.revision_save(postmortem=pm, actor=pm.author, body=body + "\nMore.", base=pm.current_revision)
    pm.refresh_from_db()
    review.review_submit(document=pm, actor=pm.author)
    assert len(asked()) == 6 and pm.author.username not in {name for name, _ in asked()}
