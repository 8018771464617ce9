"""In real browsers: an author writes a post-mortem with the live preview and autosave, a second
person saves first, the author sees the conflict and merges; a reviewer comments, the approver
approves, the author publishes and downloads the Markdown."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from postmortems import review
from postmortems.models import PostMortem
from tests.incidents.factories import make_user
from tests.postmortems.factories import resolved

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),
    pytest.mark.django_db(transaction=True),
]


def test_write_conflict_merge_review_approve_publish_export(open_session):
    author = make_user(role="responder", username="ann")
    reviewer = make_user(role="responder", username="rob")
    approver = make_user(role="lead", username="lea")
    other = make_user(role="lead", username="leo")
    incident = resolved(1, commander=author, title="Orders rejected by risk")
    pm = PostMortem.objects.get(incident=incident)
    review.review_assign(document=pm, actor=other, reviewers=[reviewer], approver=approver)

    # The author writes: the preview renders as they type, the autosave keeps their working copy.
    ann = open_session(author)
    page = ann.page
    page.goto(f"/postmortems/{pm.pk}/edit/")
    body = page.get_by_test_id("pm-body")
    text = body.input_value().replace("[1-2 sentence summary]", "Risk **rejected** every order for 20 min.")
    body.fill(text)
    expect(page.get_by_test_id("pm-preview").locator("strong", has_text="rejected")).to_have_count(1)
    expect(page.get_by_test_id("pm-autosave")).to_contain_text("Draft autosaved")
    assert pm.revisions.count() == 1  # autosaves add no revision

    # Someone else saves first, from another browser.
    leo = open_session(other)
    leo.page.goto(f"/postmortems/{pm.pk}/edit/")
    theirs = leo.page.get_by_test_id("pm-body")
    theirs.fill(theirs.input_value().replace("[Detailed explanation]", "A limit change halved the cap."))
    leo.page.get_by_test_id("pm-save").click()
    expect(leo.page.get_by_test_id("pm-status")).to_have_text("Draft")

    # The author's next autosave is refused: both versions side by side, and a merge box.
    body.fill(text + "\nOne more line.\n")
    conflict = page.get_by_test_id("pm-conflict")
    expect(conflict).to_be_visible()
    expect(conflict.locator("table.diff")).to_contain_text("A limit change halved the cap.")
    expect(conflict.locator("table.diff")).to_contain_text("One more line.")
    merge = page.get_by_test_id("pm-merge")
    merge.fill(
        merge.input_value().replace("[1-2 sentence summary]", "Risk **rejected** every order for 20 min.")
    )
    page.get_by_test_id("pm-merge-save").click()
    expect(page.get_by_test_id("pm-document")).to_contain_text("A limit change halved the cap.")
    expect(page.get_by_test_id("pm-document")).to_contain_text("Risk rejected every order")
    assert pm.revisions.count() == 3
    page.get_by_test_id("pm-submit").click()
    expect(page.get_by_test_id("pm-status")).to_have_text("In review")

    # The reviewer comments on a section; the approver approves.
    rob = open_session(reviewer)
    rob.page.goto(f"/postmortems/{pm.pk}/")
    rob.page.locator("#id_section").select_option("Root Cause")
    rob.page.locator("#id_comment").fill("Which limit, and who changed it?")
    rob.page.get_by_test_id("pm-comment").click()
    expect(rob.page.get_by_test_id("pm-comments")).to_contain_text("Which limit")
    lea = open_session(approver)
    lea.page.goto(f"/postmortems/{pm.pk}/")
    lea.page.get_by_test_id("pm-approve").click()
    expect(lea.page.get_by_test_id("pm-status")).to_have_text("Approved")

    # The author publishes and downloads it.
    page.goto(f"/postmortems/{pm.pk}/")
    page.get_by_test_id("pm-publish").click()
    expect(page.get_by_test_id("pm-status")).to_have_text("Published")
    with page.expect_download() as download:
        page.get_by_test_id("pm-export").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.startswith("# Incident Post-Mortem: Orders rejected by risk")
    assert "A limit change halved the cap." in exported and "| Approver | lea |" in exported
    assert exported.count("✅") == 2  # author and approver signed; the reviewer commented only
    for session in (ann, leo, rob, lea):
        # The refused autosave is a 409 the browser reports on its console: expected here.
        assert [p for p in session.problems.all() if "409" not in p] == []
