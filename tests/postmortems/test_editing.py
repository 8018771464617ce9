from __future__ import annotations

import pytest
from django.urls import reverse

from postmortems import review, services
from postmortems.models import Draft, PostMortemRevision
from tests.incidents.factories import make_user
from tests.postmortems.factories import in_review, postmortem

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def _body(pm, number=None):
    return PostMortemRevision.objects.get(postmortem=pm, number=number or pm.current_revision).body


def test_an_explicit_save_adds_a_revision_on_the_newest_base(client):
    pm = postmortem(1)
    client.force_login(pm.author)
    text = _body(pm).replace("[1-2 sentence summary]", "Orders stalled for 20 minutes.")
    response = client.post(
        reverse("postmortems:edit", args=[pm.pk]), {"body": text, "base": "1", "note": "summary"}
    )
    assert response.status_code == 302
    pm.refresh_from_db()
    revision = PostMortemRevision.objects.get(postmortem=pm, number=2)
    assert (pm.current_revision, revision.base, revision.author, revision.note) == (
        2,
        1,
        pm.author,
        "summary",
    )


def test_saving_the_same_text_again_writes_nothing():
    pm = postmortem(1)
    services.revision_save(postmortem=pm, actor=pm.author, body=_body(pm), base=1)
    assert pm.revisions.count() == 1


def test_autosaves_overwrite_one_working_copy_and_add_no_revision(client):
    pm = postmortem(1)
    client.force_login(pm.author)
    for n in range(5):
        response = client.post(
            reverse("postmortems:autosave", args=[pm.pk]), {"body": f"draft {n}", "base": "1"}, **HX
        )
        assert response.status_code == 200 and b"autosaved" in response.content
    assert pm.revisions.count() == 1
    assert Draft.objects.get(postmortem=pm, user=pm.author).body == "draft 4"
    # The editor brings the working copy back; saving it makes the revision and drops the copy.
    page = client.get(reverse("postmortems:edit", args=[pm.pk]))
    assert b"draft 4" in page.content and b"restored" in page.content
    client.post(reverse("postmortems:edit", args=[pm.pk]), {"body": "draft 4", "base": "1"})
    assert not Draft.objects.exists() and pm.revisions.count() == 2


def test_a_save_on_an_older_revision_is_refused_with_both_versions_and_a_merge_box(client):
    pm = postmortem(1)
    lead = make_user(role="lead")
    services.revision_save(postmortem=pm, actor=lead, body=_body(pm) + "\nTheir line\n", base=1)
    client.force_login(pm.author)
    mine = _body(pm, 1) + "\nMy line\n"
    response = client.post(reverse("postmortems:edit", args=[pm.pk]), {"body": mine, "base": "1"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "Their line" in html and "My line" in html and 'class="diff"' in html
    assert 'name="base" value="2"' in html  # the merge saves on the newest base
    pm.refresh_from_db()
    assert pm.current_revision == 2
    merged = _body(pm) + "My line\n"
    assert (
        client.post(reverse("postmortems:edit", args=[pm.pk]), {"body": merged, "base": "2"}).status_code
        == 302
    )
    assert _body(pm, 3) == merged


def test_an_autosave_on_an_older_revision_keeps_the_copy_and_answers_409_into_the_conflict_box(client):
    pm = postmortem(1)
    services.revision_save(postmortem=pm, actor=make_user(role="lead"), body="theirs", base=1)
    client.force_login(pm.author)
    response = client.post(reverse("postmortems:autosave", args=[pm.pk]), {"body": "mine", "base": "1"}, **HX)
    assert response.status_code == 409 and response["HX-Retarget"] == "#conflict"
    assert Draft.objects.get(user=pm.author).body == "mine"


def test_the_preview_renders_markdown_safely_inside_hx_disable(client):
    pm = postmortem(1)
    client.force_login(pm.author)
    response = client.post(
        reverse("postmortems:preview", args=[pm.pk]),
        {"body": "**bold** <script>alert(1)</script> [x](javascript:alert(1))"},
        **HX,
    )
    html = response.content.decode()
    assert (
        "<strong>bold</strong>" in html
        and "<script" not in html
        and "javascript:" not in html.split("[x]")[0]
    )
    page = client.get(reverse("postmortems:edit", args=[pm.pk])).content.decode()
    assert 'id="preview" class="card document" hx-disable' in page


def test_history_shows_a_diff_between_any_two_revisions(client):
    pm = postmortem(1)
    services.revision_save(
        postmortem=pm, actor=pm.author, body=_body(pm).replace("Root Cause", "Root cause"), base=1
    )
    services.revision_save(postmortem=pm, actor=pm.author, body=_body(pm, 1) + "\nEnd\n", base=2)
    client.force_login(make_user(role="viewer"))
    response = client.get(reverse("postmortems:history", args=[pm.pk]), {"a": 1, "b": 3})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="diff-insert"' in html and 'class="diff-replace"' not in html  # r3 is r1 plus a line
    assert "r1" in html and "r3" in html


def test_an_edit_after_approval_starts_a_new_revision_that_needs_approval_again():
    pm = postmortem(1)
    _, approver = in_review(pm)
    review.review_approve(document=pm, actor=approver)
    pm.refresh_from_db()
    assert (pm.status, pm.approved_revision) == ("approved", 1)
    services.revision_save(postmortem=pm, actor=pm.author, body="changed", base=1)
    pm.refresh_from_db()
    assert (pm.status, pm.approved_revision, pm.current_revision) == ("draft", 1, 2)
    assert _body(pm, 1) != "changed"  # the approved revision is unchanged
    assert pm.incident.events.filter(kind="postmortem", data__step="reopened").exists()


def test_someone_who_may_not_edit_gets_403(client):
    pm = postmortem(1)
    client.force_login(make_user(role="responder"))
    assert (
        client.post(reverse("postmortems:edit", args=[pm.pk]), {"body": "x", "base": "1"}).status_code == 403
    )
