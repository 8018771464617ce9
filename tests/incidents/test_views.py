from __future__ import annotations

import html
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from incidents import services
from incidents.models import ChecklistKind, EventKind, Incident, Severity, Status, TimelineEvent
from tests.incidents.factories import declare

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def url(name, incident=None):
    return reverse(f"incidents:{name}", args=[incident.pk] if incident else [])


def last_event(incident):
    return TimelineEvent.objects.filter(incident=incident).order_by("-id").first()


class TestDeclare:
    def post(self, client, **data):
        base = {"title": "Orders rejected", "incident_type": "", "severity": "", "affected_components": ""}
        from incidents.models import IncidentType

        base["incident_type"] = str(IncidentType.objects.get(slug="other").pk)
        return client.post(url("declare"), {**base, **data})

    def test_decision_tree_suggestion_is_taken_and_kept(self, client, responder):
        client.force_login(responder)
        response = self.post(client, losing_money="no", services_down="one", degraded="no")
        incident = Incident.objects.get()
        assert response.status_code == 302
        assert response.url == url("detail", incident)
        assert incident.severity == Severity.SEV2
        assert incident.decision_answers == {
            "losing_money": False,
            "services_down": "one",
            "degraded": None,  # not asked: a service down decided
            "suggested": 2,
            "activate_kill_switch": True,
        }
        page = client.get(url("detail", incident)).content.decode()
        assert "Is any service completely down?" in page and "One non-core service is down" in page

    def test_an_explicit_severity_wins_over_the_suggestion(self, client, responder):
        client.force_login(responder)
        self.post(client, losing_money="yes", severity="3", severity_reason="Paper trading only")
        incident = Incident.objects.get()
        assert incident.severity == 3
        assert incident.decision_answers["suggested"] == 1

    def test_no_severity_and_no_tree_is_a_clear_error(self, client, responder):
        client.force_login(responder)
        response = self.post(client)
        assert response.status_code == 422
        assert "Choose a severity or answer the decision tree." in response.content.decode()
        assert not Incident.objects.exists()

    def test_a_half_answered_tree_is_refused_and_input_kept(self, client, responder):
        client.force_login(responder)
        response = self.post(client, losing_money="no", severity="2", title="Keep me")
        assert response.status_code == 422
        assert "Finish the decision tree" in response.content.decode()
        assert 'value="Keep me"' in response.content.decode()

    def test_unknown_severity_and_type_are_form_errors(self, client, responder):
        client.force_login(responder)
        assert self.post(client, severity="9").status_code == 422
        assert self.post(client, severity="1", incident_type="99999").status_code == 422
        assert not Incident.objects.exists()

    def test_suggestion_fragment(self, client, responder):
        client.force_login(responder)
        response = client.get(
            url("declare_suggest"), {"losing_money": "yes", "services_down": "none", "degraded": "no"}, **HX
        )
        body = response.content.decode()
        assert response.status_code == 200
        assert body.lstrip().startswith('<div id="suggestion"')
        assert "SEV-1" in body and "activate the kill switch" in body

    def test_viewer_may_not_declare(self, client, viewer):
        client.force_login(viewer)
        assert client.get(url("declare")).status_code == 403
        assert self.post(client, severity="1").status_code == 403
        assert not Incident.objects.exists()


class TestActions:
    def test_plain_post_acknowledge_redirects_back(self, client, responder, incident):
        client.force_login(responder)
        response = client.post(url("acknowledge", incident))
        assert response.status_code == 302 and response.url == url("detail", incident)
        assert last_event(incident).kind == EventKind.ACKNOWLEDGED

    def test_htmx_acknowledge_answers_204_and_triggers_refresh(self, client, responder, incident):
        client.force_login(responder)
        response = client.post(url("acknowledge", incident), **HX)
        assert response.status_code == 204
        assert json.loads(response.headers["HX-Trigger"]) == {"incident-changed": {}}

    def test_refused_transition_via_htmx_is_a_409_like_message_in_flash(self, client, responder, incident):
        client.force_login(responder)
        response = client.post(
            url("transition", incident), {"to_status": "investigating", "from_status": "triage"}, **HX
        )
        assert response.status_code == 422
        assert response.headers["HX-Retarget"] == "#flash"
        assert "Acknowledge the incident before it leaves triage." in response.content.decode()
        incident.refresh_from_db()
        assert incident.status == Status.TRIAGE

    def test_refused_transition_plain_post_shows_page_with_message(self, client, responder, incident):
        client.force_login(responder)
        response = client.post(url("transition", incident), {"to_status": "closed", "from_status": "triage"})
        assert response.status_code == 422
        assert "Triage cannot move to Closed." in response.content.decode()

    def test_stale_click_gets_a_clear_message(self, client, responder, incident):
        client.force_login(responder)
        services.incident_acknowledge(incident=incident, actor=responder)
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.MITIGATING)
        response = client.post(
            url("transition", incident), {"to_status": "investigating", "from_status": "triage"}, **HX
        )
        assert response.status_code == 422
        assert "is now Mitigating (someone changed it); nothing changed." in response.content.decode()

    def test_tampered_status_value_is_a_form_error(self, client, responder, incident):
        client.force_login(responder)
        response = client.post(url("transition", incident), {"to_status": "deleted"})
        assert response.status_code == 422
        assert Incident.objects.get().status == Status.TRIAGE

    def test_note_form_htmx_returns_a_fresh_form(self, client, responder, incident):
        client.force_login(responder)
        response = client.post(url("note", incident), {"text": "Restarted cdb_risk"}, **HX)
        body = response.content.decode()
        assert response.status_code == 200 and body.lstrip().startswith('<form id="note-form"')
        assert "Restarted cdb_risk" not in body
        assert json.loads(response.headers["HX-Trigger"]) == {"incident-changed": {}}
        assert last_event(incident).message == "Restarted cdb_risk"

    def test_empty_note_keeps_the_form_with_an_error(self, client, responder, incident):
        client.force_login(responder)
        response = client.post(url("note", incident), {"text": "   "}, **HX)
        assert response.status_code == 422
        assert "This field is required." in response.content.decode()
        response = client.post(url("note", incident), {"text": "   "})
        assert response.status_code == 422
        assert 'id="note-form"' in response.content.decode()

    def test_severity_change_without_reason_keeps_input(self, client, responder, incident):
        client.force_login(responder)
        response = client.post(url("severity", incident), {"severity": "1", "reason": ""}, **HX)
        assert response.status_code == 422
        assert Incident.objects.get().severity == 3

    def test_commander_must_be_a_candidate(self, client, responder, viewer, incident):
        client.force_login(responder)
        response = client.post(url("commander", incident), {"commander": viewer.pk}, **HX)
        assert response.status_code == 422
        response = client.post(url("commander", incident), {"commander": responder.pk}, **HX)
        assert response.status_code == 200
        assert Incident.objects.get().commander == responder

    def test_checklist_tick(self, client, responder, incident):
        client.force_login(responder)
        item = incident.checklist_items.filter(kind=ChecklistKind.TRIAGE).first()
        assert (
            client.post(url("checklist", incident), {"item": item.pk, "done": "1"}, **HX).status_code == 204
        )
        item.refresh_from_db()
        assert item.done_by == responder

    def test_override_needs_the_lead_permission(self, client, responder, lead):
        incident = declare(responder, severity=Severity.SEV2)
        services.incident_acknowledge(incident=incident, actor=responder)
        services.incident_assign_commander(incident=incident, actor=responder, commander=responder)
        data = {"to_status": "resolved", "override_reason": "Exchange recovered"}
        client.force_login(responder)
        assert client.post(url("transition", incident), data).status_code == 403
        client.force_login(lead)
        response = client.post(url("transition", incident), data, **HX)
        assert response.status_code == 200
        assert Incident.objects.get(pk=incident.pk).status == Status.RESOLVED

    def test_commander_may_edit_their_incident_other_responders_may_not(
        self, client, responder, commander, incident
    ):
        data = {"title": "Renamed", "description": "", "affected_components": "cdb_risk, cdb_execution"}
        client.force_login(responder)
        assert client.post(url("edit", incident), data).status_code == 403
        client.force_login(commander)
        assert client.post(url("edit", incident), data).status_code == 302
        incident.refresh_from_db()
        assert (incident.title, incident.affected_components) == ("Renamed", ["cdb_risk", "cdb_execution"])

    def test_csrf_is_enforced_on_htmx_posts(self, responder, incident):
        from django.test import Client

        client = Client(enforce_csrf_checks=True)
        client.force_login(responder)
        assert client.post(url("acknowledge", incident), **HX).status_code == 403
        page = client.get(url("detail", incident))
        token = page.context["csrf_token"]
        assert (
            f"X-CSRFToken&quot;: &quot;{token}" in page.content.decode()
            or f'"X-CSRFToken": "{token}"' in page.content.decode()
        )
        assert client.post(url("acknowledge", incident), HTTP_X_CSRFTOKEN=str(token), **HX).status_code == 204


class TestLivePage:
    def test_unchanged_poll_is_one_query_and_no_body(
        self, client, responder, incident, django_assert_num_queries
    ):
        client.force_login(responder)
        with django_assert_num_queries(1):
            response = client.get(url("poll", incident), {"v": incident.version})
        assert response.status_code == 204
        assert response.content == b""

    def test_changed_poll_returns_regions_and_only_new_events(self, client, responder, incident):
        client.force_login(responder)
        seen = incident.version
        services.incident_add_note(incident=incident, actor=responder, text="first new")
        services.incident_add_note(incident=incident, actor=responder, text="second new")
        response = client.get(url("poll", incident), {"v": seen})
        body = response.content.decode()
        assert response.status_code == 200
        for region in (
            'id="incident-header"',
            'id="incident-actions"',
            'id="incident-checklists"',
            'id="poller"',
        ):
            assert region in body
        assert 'hx-swap-oob="afterbegin:#timeline-list"' in body
        assert body.count('class="event ') == 2
        assert body.index("second new") < body.index("first new")  # one block, newest first, goes on top
        incident.refresh_from_db()
        assert f'value="{incident.version}"' in body

    def test_poll_of_a_closed_unchanged_incident_stops_polling(self, client, responder, incident):
        services.incident_acknowledge(incident=incident, actor=responder)
        for status in (Status.RESOLVED, Status.CLOSED):
            services.incident_change_status(incident=incident, actor=responder, to_status=status)
        incident.refresh_from_db()
        client.force_login(responder)
        assert client.get(url("poll", incident), {"v": incident.version}).status_code == 286

    def test_poll_falls_back_to_full_checks(self, client, norole, viewer, incident):
        # Anonymous: login redirect; no role: 404 (cannot see it); a logged-out session: redirect.
        assert client.get(url("poll", incident), {"v": incident.version}).status_code == 302
        client.force_login(norole)
        assert client.get(url("poll", incident), {"v": incident.version}).status_code == 404
        client.force_login(viewer)
        assert client.get(url("poll", incident), {"v": incident.version}).status_code == 204
        client.logout()
        assert client.get(url("poll", incident), {"v": incident.version}).status_code == 302

    def test_password_change_invalidates_the_poll_fast_path(self, client, viewer, incident):
        client.force_login(viewer)
        viewer.set_password("a-whole-new-password")
        viewer.save()
        assert client.get(url("poll", incident), {"v": incident.version}).status_code == 302

    def test_object_permission_alone_lets_a_user_poll(self, client, norole, incident):
        from guardian.shortcuts import assign_perm

        assign_perm("incidents.view_incident", norole, incident)
        client.force_login(norole)
        assert client.get(url("poll", incident), {"v": incident.version}).status_code == 204
        assert client.get(url("detail", incident)).status_code == 200

    def test_detail_page_query_count_does_not_grow_with_the_timeline(
        self, client, responder, incident, django_assert_max_num_queries
    ):
        client.force_login(responder)
        client.get(url("detail", incident))
        for i in range(30):
            services.incident_add_note(incident=incident, actor=responder, text=f"note {i}")
        with django_assert_max_num_queries(27) as ctx:
            client.get(url("detail", incident))
        small = len(ctx.captured_queries)
        for i in range(30):
            services.incident_add_note(incident=incident, actor=responder, text=f"more {i}")
        with django_assert_max_num_queries(small):
            client.get(url("detail", incident))

    def test_untrusted_text_is_escaped(self, client, responder):
        incident = declare(responder, title="<script>alert(1)</script>")
        services.incident_add_note(incident=incident, actor=responder, text="<img src=x onerror=alert(2)>")
        client.force_login(responder)
        body = client.get(url("detail", incident)).content.decode()
        assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
        assert "<img src=x" not in body


class TestHome:
    def test_board_orders_by_severity_then_age_and_counts(self, client, responder):
        low = declare(responder, severity=4, title="low")
        high = declare(responder, severity=1, title="high")
        mid = declare(responder, severity=2, title="mid")
        client.force_login(responder)
        response = client.get(url("home"))
        assert [i.pk for i in response.context["board"]] == [high.pk, mid.pk, low.pk]
        assert response.context["counts"] == {1: 1, 2: 1, 3: 0, 4: 1}

    def test_filters_and_closed_search(self, client, responder, lead):
        mine = declare(responder, severity=1, title="cdb_risk down")
        other = declare(lead, severity=1, title="exchange slow")
        closed = declare(responder, severity=4, title="old dashboard glitch")
        services.incident_acknowledge(incident=closed, actor=responder)
        services.incident_change_status(incident=closed, actor=responder, to_status=Status.RESOLVED)
        client.force_login(responder)
        board = client.get(url("home"), {"mine": "on"}).context["board"]
        assert [i.pk for i in board] == [mine.pk, closed.pk][:1]
        assert other not in board
        assert list(client.get(url("home"), {"severity": [4]}).context["board"]) == []
        page = client.get(url("home"), {"q": "dashboard"}).context["closed_page"]
        assert [i.pk for i in page] == [closed.pk]
        page = client.get(url("home"), {"q": f"INC-{closed.pk}"}).context["closed_page"]
        assert [i.pk for i in page] == [closed.pk]

    def test_htmx_filter_returns_the_results_partial(self, client, responder):
        client.force_login(responder)
        response = client.get(url("home"), {"severity": [1]}, **HX)
        assert response.content.decode().lstrip().startswith('<div id="results"')

    def test_home_query_count_is_constant(self, client, responder, django_assert_max_num_queries):
        client.force_login(responder)
        declare(responder, severity=2)
        client.get(url("home"))
        with django_assert_max_num_queries(20) as ctx:
            client.get(url("home"))
        n = len(ctx.captured_queries)
        for s in (1, 2, 3, 4, 1, 2):
            declare(responder, severity=s)
        with django_assert_max_num_queries(n):
            client.get(url("home"))

    def test_bad_filter_values_do_not_error(self, client, responder):
        client.force_login(responder)
        assert client.get(url("home"), {"severity": "x", "type": "nope", "status": "gone"}).status_code == 200


def test_board_shows_the_most_urgent_50_and_offers_all(client, responder):
    from incidents import views

    for i in range(views.BOARD_ROWS + 2):
        declare(responder, severity=1 if i == views.BOARD_ROWS + 1 else 4, title=f"n{i}")
    client.force_login(responder)
    response = client.get(url("home"))
    board = response.context["board"]
    assert len(board) == views.BOARD_ROWS and board[0].severity == 1 and response.context["board_more"]
    assert "Show all open incidents" in response.content.decode()
    response = client.get(url("home"), {"all": "1"})
    assert len(response.context["board"]) == views.BOARD_ROWS + 2 and not response.context["board_more"]


def test_fresh_forms_after_htmx_show_current_values(client, responder, incident):
    client.force_login(responder)
    body = client.post(url("severity", incident), {"severity": "2", "reason": "worse"}, **HX).content.decode()
    assert '<option value="2" selected>' in body
    body = client.post(url("commander", incident), {"commander": responder.pk}, **HX).content.decode()
    assert f'<option value="{responder.pk}" selected>' in body


class TestLists:
    def test_pagination_keeps_every_filter(self, client, responder):
        for i in range(30):
            closed = declare(responder, severity=4, title=f"dashboard glitch {i}")
            services.incident_acknowledge(incident=closed, actor=responder)
            services.incident_change_status(incident=closed, actor=responder, to_status=Status.RESOLVED)
        client.force_login(responder)
        query = {"severity": ["4", "3"], "type": "other", "mine": "on", "q": "glitch"}
        body = client.get(url("home"), query).content.decode()
        older = re.search(r'<a href="([^"]+)"[^>]*>Older', body)
        assert older, "a link to the next page"
        params = parse_qs(urlsplit(html.unescape(older.group(1))).query)
        assert params == {
            "severity": ["4", "3"],
            "type": ["other"],
            "mine": ["on"],
            "q": ["glitch"],
            "page": ["2"],
        }
        page2 = client.get(url("home"), params).context["closed_page"]
        assert page2.number == 2 and len(page2.object_list) == 5

    def test_search_covers_open_and_closed_incidents(self, client, responder):
        open_one = declare(responder, title="Exchange API slow")
        other_open = declare(responder, title="Risk engine down")
        closed = declare(responder, title="Exchange API outage last week")
        services.incident_acknowledge(incident=closed, actor=responder)
        services.incident_change_status(incident=closed, actor=responder, to_status=Status.RESOLVED)
        client.force_login(responder)
        response = client.get(url("home"), {"q": "exchange"})
        assert [i.pk for i in response.context["board"]] == [open_one.pk]
        assert other_open not in response.context["board"]
        assert [i.pk for i in response.context["closed_page"]] == [closed.pk]
        response = client.get(url("home"), {"q": f"inc-{other_open.pk}"})
        assert [i.pk for i in response.context["board"]] == [other_open.pk]

    def test_the_boards_clock_says_what_is_due_without_javascript(self, client, responder):
        from datetime import timedelta

        from django.utils import timezone

        declare(responder, severity=1, detected_at=timezone.now() - timedelta(minutes=5))
        client.force_login(responder)
        body = client.get(url("home")).content.decode()
        assert re.search(r'class="sla-part">ack due in (9|10):\d\d<', body), body
        assert "0 minutes left" not in body
