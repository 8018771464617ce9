"""The proposal pages: the list, a proposal from a post-mortem or a drill, the editor's refusals, the
diff, the review steps as plain POSTs and with htmx, the links to and from the playbook pages, and the
permission and CSRF checks of every step."""

from __future__ import annotations

import re
from datetime import timedelta
from html import escape

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from drills.models import Status as DrillStatus
from incidents.playbook import current_version, parse_playbook_yaml, playbook_yaml
from playbookreview.models import PlaybookProposal
from postmortems import review
from postmortems import services as postmortems
from tests.drills.factories import drill
from tests.incidents.factories import make_user
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
HX = {"HTTP_HX_REQUEST": "true"}
LESSON = "SEV-3 incidents need a first look within 30 minutes, not four hours."


def url(name: str, p: PlaybookProposal, *more: int) -> str:
    return reverse(f"playbookreview:{name}", args=[p.pk, *more])


def form_of(p: PlaybookProposal, yaml_text: str, base: int | None = None) -> dict[str, str]:
    return {
        "title": p.title,
        "reason": p.reason,
        "yaml": yaml_text,
        "base": str(p.current_revision if base is None else base),
    }


# --- The list ----------------------------------------------------------------------------------


def test_the_list_groups_proposals_by_status(client, viewer):
    proposal(title="Answer SEV-3 in 30 minutes")
    in_review(proposal(sev4_escalates_at_5_minutes, title="Page SEV-4 after 5 minutes"))
    client.force_login(viewer)
    body = client.get(reverse("playbookreview:list")).content.decode()
    draft = body.index('id="proposals-draft"')
    reviewing = body.index('id="proposals-in_review"')
    assert body.index("Answer SEV-3 in 30 minutes") > draft
    assert reviewing < body.index("Page SEV-4 after 5 minutes")
    only = client.get(reverse("playbookreview:list"), {"status": "in_review"}).content.decode()
    assert "Page SEV-4 after 5 minutes" in only and "Answer SEV-3 in 30 minutes" not in only
    assert 'data-testid="propose"' not in body  # a viewer reads, and does not propose


def test_the_list_costs_the_same_queries_for_more_proposals(client, viewer):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("playbookreview:list")).status_code == 200
        return len(queries)

    client.force_login(viewer)
    in_review(proposal())
    count()  # the process's first request fills its caches (content types, permissions)
    few = count()
    for _ in range(3):
        in_review(proposal(sev4_escalates_at_5_minutes))
    assert count() == few


# --- New proposals, from a lesson ---------------------------------------------------------------


def test_a_postmortem_lesson_prefills_a_new_proposal_linked_both_ways(client, lead):
    pm = postmortem(1)
    body = pm.revisions.get(number=1).body.replace("[Key takeaways]", LESSON)
    postmortems.revision_save(postmortem=pm, actor=pm.author, body=body, base=1)
    client.force_login(lead)
    new = f"{reverse('playbookreview:new')}?postmortem={pm.pk}"
    assert f'href="{new}"' in client.get(reverse("postmortems:detail", args=[pm.pk])).content.decode()

    page = client.get(new).content.decode()
    assert escape(LESSON) in page and f'name="postmortem" value="{pm.pk}"' in page
    assert escape(current_version().yaml) in page  # the version in force to edit
    text = changed_yaml(sev3_in_30_minutes)
    response = client.post(
        reverse("playbookreview:new"),
        {"title": "Answer SEV-3 in 30 minutes", "reason": LESSON, "yaml": text, "postmortem": pm.pk},
    )
    p = PlaybookProposal.objects.get()
    assert response.status_code == 302 and response.url == url("detail", p)
    assert (p.postmortem, p.author, p.yaml, p.status) == (pm, lead, text, "draft")
    back = client.get(reverse("postmortems:detail", args=[pm.pk])).content.decode()
    assert f'href="{url("detail", p)}"' in back
    detail = client.get(url("detail", p)).content.decode()
    assert f'href="{reverse("postmortems:detail", args=[pm.pk])}"' in detail


def test_a_drill_review_prefills_a_new_proposal(client, lead):
    done = drill(
        status=DrillStatus.COMPLETED,
        started_at=timezone.now() - timedelta(days=1),
        completed_at=timezone.now() - timedelta(days=1),
        findings="The resume waited for a second lead.",
        playbook_proposal="Name a standing second approver for resumes.",
    )
    client.force_login(lead)
    new = f"{reverse('playbookreview:new')}?drill={done.pk}"
    assert f'href="{new}"' in client.get(reverse("drills:review", args=[done.pk])).content.decode()
    page = client.get(new).content.decode()
    assert "Name a standing second approver for resumes." in page
    assert f'name="drill" value="{done.pk}"' in page
    response = client.post(
        reverse("playbookreview:new"),
        {"title": "Second approver", "reason": "From the drill", "yaml": changed_yaml(), "drill": done.pk},
    )
    assert response.status_code == 302
    p = PlaybookProposal.objects.get()
    assert p.drill == done
    assert (
        f'href="{url("detail", p)}"' in client.get(reverse("drills:review", args=[done.pk])).content.decode()
    )


def test_a_new_proposal_with_an_invalid_playbook_keeps_the_text(client, responder):
    client.force_login(responder)
    text = "# my notes <keep>\nseverities: []\n"
    response = client.post(
        reverse("playbookreview:new"), {"title": "Broken", "reason": "Testing", "yaml": text}
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert escape(text) in body
    assert "incident_types: this section is required" in body
    assert "severities: SEV-1, SEV-2, SEV-3, SEV-4 missing" in body
    assert not PlaybookProposal.objects.exists()


@pytest.mark.parametrize("role", ["viewer", "executive", None])
def test_proposing_needs_the_responder_lead_or_admin_role(client, role):
    client.force_login(make_user(role=role) if role else make_user())
    assert client.get(reverse("playbookreview:new")).status_code == 403
    response = client.post(
        reverse("playbookreview:new"), {"title": "t", "reason": "r", "yaml": changed_yaml(sev3_in_30_minutes)}
    )
    assert response.status_code == 403
    assert not PlaybookProposal.objects.exists()


# --- The proposal and its editor ---------------------------------------------------------------


def test_the_proposal_page_shows_the_change_against_its_base(client, viewer):
    p = proposal(sev3_in_30_minutes)
    client.force_login(viewer)
    body = client.get(url("detail", p)).content.decode()
    assert "1 line added, 1 removed" in body
    assert "<del>240</del>" in body and "<ins>30</ins>" in body
    assert '<span class="tag">severities</span>' in body
    assert escape(p.reason) in body
    for action in ("proposal-edit", "proposal-submit", "proposal-approve", "proposal-comment"):
        assert f'data-testid="{action}"' not in body  # a reader, not a party to the review


def test_an_invalid_save_lists_every_error_and_keeps_the_typed_text(client):
    p = proposal()
    doc = parse_playbook_yaml(p.yaml)
    doc["severities"][2]["response_minutes"] = 0
    doc["incident_types"][0]["slug"] = "not a slug"
    text = "# Draft: 'faster' & <sooner>\n" + playbook_yaml(doc)
    client.force_login(p.author)
    response = client.post(url("edit", p), form_of(p, text))
    assert response.status_code == 422
    body = response.content.decode()
    assert escape(text) in body
    assert "2 problems" in body
    assert "severities[2].response_minutes: must be a positive integer" in body
    assert "incident_types[0].slug: must be a slug" in body
    p.refresh_from_db()
    assert p.current_revision == 1


def test_a_save_on_an_older_revision_shows_both_and_keeps_the_typed_text(client):
    p = proposal()
    lead = make_user(role="lead")
    save(p, changed_yaml(sev3_in_60_minutes), actor=lead, note="60 minutes")
    mine = changed_yaml(sev4_escalates_at_5_minutes)
    client.force_login(p.author)
    p.refresh_from_db()
    response = client.post(url("edit", p), form_of(p, mine, base=1))
    assert response.status_code == 409
    body = response.content.decode()
    assert 'data-testid="conflict"' in body and "revision 2 was saved meanwhile" in body
    assert lead.username in body
    assert escape(mine) in body
    assert re.search(r'name="base" value="2"', body)
    p.refresh_from_db()
    assert p.current_revision == 2 and "response_minutes: 60" in p.yaml
    # Saved again knowingly on the newest revision: accepted.
    assert client.post(url("edit", p), form_of(p, mine, base=2)).status_code == 302
    p.refresh_from_db()
    assert (p.current_revision, p.yaml) == (3, mine)
    history = client.get(url("history", p), {"a": 2, "b": 3}).content.decode()
    assert "60 minutes" in history and "<ins>5</ins>" in history


def test_another_responder_neither_edits_nor_submits(client):
    p = proposal()
    assign(p)
    client.force_login(make_user(role="responder"))
    assert client.get(url("edit", p)).status_code == 403
    assert client.post(url("edit", p), form_of(p, changed_yaml(sev3_in_60_minutes))).status_code == 403
    assert client.post(url("submit", p)).status_code == 403
    assert client.post(url("rebase", p)).status_code == 403
    p.refresh_from_db()
    assert (p.status, p.current_revision) == ("draft", 1)


def test_a_lead_edits_any_open_proposal(client, lead):
    p = proposal()
    client.force_login(lead)
    assert client.post(url("edit", p), form_of(p, changed_yaml(sev3_in_60_minutes))).status_code == 302
    p.refresh_from_db()
    assert p.current_revision == 2


def test_people_without_a_role_learn_nothing_about_a_proposal(client, norole):
    p = proposal()
    client.force_login(norole)
    assert client.get(url("detail", p)).status_code == 404
    assert client.get(reverse("playbookreview:list")).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client):
    p = proposal()
    for target in (reverse("playbookreview:list"), url("detail", p)):
        response = client.get(target)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))


# --- The review steps --------------------------------------------------------------------------


def test_the_whole_review_on_the_pages(client):
    p = proposal()
    reviewer, approver = make_user(role="responder"), make_user(role="lead")
    client.force_login(p.author)
    response = client.post(url("assign", p), {"reviewers": [reviewer.pk], "approver": approver.pk})
    assert response.status_code == 302
    assert client.post(url("submit", p)).status_code == 302
    p.refresh_from_db()
    assert p.status == "in_review"

    client.force_login(reviewer)
    page = client.get(url("detail", p)).content.decode()
    assert 'data-testid="proposal-comment"' in page and 'data-testid="proposal-approve"' not in page
    client.post(url("comment", p), {"section": "severities", "body": "Why 30?"})
    client.post(url("signoff", p))

    client.force_login(approver)
    response = client.post(url("approve", p), follow=True)
    assert "the playbook is now version 2" in response.content.decode()
    p.refresh_from_db()
    assert p.adopted_version is not None and p.adopted_version.number == 2
    body = client.get(url("detail", p)).content.decode()
    assert 'data-testid="adopted"' in body
    assert f'href="{reverse("incidents:playbook_version", args=[2])}"' in body
    assert 'data-testid="proposal-edit"' not in body
    table = body[body.index('data-testid="proposal-approval"') :]
    for person in (p.author, reviewer, approver):
        assert person.username in table
    # The playbook pages name the proposal a version came from.
    link = f'<a href="{url("detail", p)}" data-testid="source-proposal">proposal #{p.pk}</a>'
    assert link in client.get(reverse("incidents:playbook_versions")).content.decode()
    assert link in client.get(reverse("incidents:playbook_version", args=[2])).content.decode()
    assert link in client.get(reverse("incidents:playbook")).content.decode()
    assert reverse("playbookreview:list") in client.get(reverse("incidents:playbook")).content.decode()


def test_the_approve_button_is_for_the_approver_only_and_refusals_are_messages(client):
    p = proposal()
    reviewer, approver = in_review(p)
    client.force_login(reviewer)
    assert client.post(url("approve", p)).status_code == 403
    adopt(sev4_escalates_at_5_minutes)
    client.force_login(approver)
    response = client.post(url("approve", p), follow=True)
    assert "The playbook moved on: version 2 is in force" in response.content.decode()
    p.refresh_from_db()
    assert (p.status, p.adopted_version) == ("in_review", None)


def test_the_page_offers_a_rebase_when_the_playbook_moved_on(client):
    p = proposal(sev3_in_30_minutes)
    in_review(p)
    adopt(sev4_escalates_at_5_minutes)
    client.force_login(p.author)
    body = client.get(url("detail", p)).content.decode()
    assert 'data-testid="moved-on"' in body and 'data-testid="proposal-rebase"' in body
    assert 'data-testid="proposal-submit"' not in body
    response = client.post(url("rebase", p), follow=True)
    assert "Based on version 2 (revision 2)" in response.content.decode()
    p.refresh_from_db()
    assert (p.base_version.number, p.status) == (2, "draft")
    assert 'data-testid="moved-on"' not in client.get(url("detail", p)).content.decode()


def test_a_conflicting_rebase_names_the_sections_and_offers_taking_the_version_in_force(client):
    p = proposal(sev3_in_30_minutes, sev4_escalates_at_5_minutes)
    adopt(sev3_in_60_minutes)
    client.force_login(p.author)
    body = client.get(url("detail", p)).content.decode()
    assert "both changed: severities." in body and 'data-testid="proposal-rebase-take"' in body
    refused = client.post(url("rebase", p), follow=True).content.decode()
    assert "both changed severities" in refused
    p.refresh_from_db()
    assert p.base_version.number == 1
    client.post(url("rebase", p), {"take_current": "1"})
    p.refresh_from_db()
    doc = parse_playbook_yaml(p.yaml)
    assert p.base_version.number == 2
    assert (doc["severities"][2]["response_minutes"], doc["escalation"][3]["steps"][0]["after_minutes"]) == (
        60,
        5,
    )


def test_a_reviewer_comments_in_place_with_htmx(client):
    p = proposal()
    reviewer, _ = in_review(p)
    client.force_login(reviewer)
    response = client.post(url("comment", p), {"section": "severities", "body": "Why 30?"}, **HX)
    assert response.status_code == 200 and "proposal-changed" in response["HX-Trigger"]
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="card" id="comments"') and "<html" not in body
    assert "Why 30?" in body
    empty = client.post(url("comment", p), {"section": "severities", "body": "  "}, **HX)
    assert empty.status_code == 422 and "The comment is empty." in empty.content.decode()
    [comment] = review.comments_of(p)
    client.force_login(p.author)  # the author resolves, as a plain POST
    assert client.post(url("comment_resolve", p, comment.pk)).status_code == 302
    comment.refresh_from_db()
    assert comment.resolved_by == p.author


def test_someone_not_assigned_cannot_comment(client, lead):
    p = proposal()
    in_review(p)
    client.force_login(lead)
    assert client.post(url("comment", p), {"section": "Reason", "body": "Hm"}).status_code == 403
    assert review.comments_of(p) == []


POSTS = ["assign", "submit", "signoff", "approve", "rebase", "comment"]


@pytest.mark.parametrize("name", POSTS)
def test_every_step_needs_the_csrf_token(name):
    p = proposal()
    reviewer, approver = assign(p)
    actor = {"signoff": reviewer, "comment": reviewer, "approve": approver}.get(name, p.author)
    if name in ("signoff", "approve", "comment"):
        from playbookreview import services

        services.proposal_submit(proposal=p, actor=p.author)
    client = Client(enforce_csrf_checks=True)
    client.force_login(actor)
    data = {"section": "Reason", "body": "ok", "reviewers": [reviewer.pk], "approver": ""}
    before = (PlaybookProposal.objects.get(pk=p.pk).status, review.comments_of(p), p.events.count())
    assert client.post(url(name, p), data).status_code == 403
    assert (PlaybookProposal.objects.get(pk=p.pk).status, review.comments_of(p), p.events.count()) == before
    page = client.get(url("detail", p)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    assert client.post(url(name, p), {**data, "csrfmiddlewaretoken": token.group(1)}).status_code == 302


def test_the_edit_form_needs_the_csrf_token():
    p = proposal()
    client = Client(enforce_csrf_checks=True)
    client.force_login(p.author)
    data = form_of(p, changed_yaml(sev3_in_60_minutes))
    assert client.post(url("edit", p), data).status_code == 403
    page = client.get(url("edit", p)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    assert client.post(url("edit", p), {**data, "csrfmiddlewaretoken": token.group(1)}).status_code == 302
    p.refresh_from_db()
    assert p.current_revision == 2
