"""What another app plugs into an incident: timeline kinds with their own templates, and page panels."""

from __future__ import annotations

import pytest
from django.urls import reverse

from incidents import panels, services, timeline
from incidents.models import TimelineEvent
from tests.incidents.factories import declare

pytestmark = pytest.mark.django_db


def test_each_kind_renders_with_its_own_template_and_unknown_kinds_with_the_default(client, responder):
    incident = declare(responder)
    services.incident_record_event(
        incident=incident, kind="kill_switch", actor=responder, message="Halted trading on Production"
    )
    services.incident_record_event(
        incident=incident, kind="page_sent", actor=None, message="Paged <b>alice</b> by email"
    )
    client.force_login(responder)
    body = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert '<strong class="killswitch-event">⏻ Halted trading on Production</strong>' in body
    # A kind without a template shows its message, escaped like every other value.
    assert "Paged &lt;b&gt;alice&lt;/b&gt; by email" in body
    assert "declared the incident as SEV-3" in body


def test_a_registered_kind_has_its_label_and_an_unregistered_one_a_readable_name():
    timeline.register_kind("page_sent", "Page sent")
    assert timeline.kind_label("page_sent") == "Page sent"
    assert timeline.kind_label("kill_switch") == "Kill switch"
    assert timeline.kind_label("drill_started") == "Drill started"
    with pytest.raises(ValueError, match="longer than 30"):
        timeline.register_kind("x" * 31, "too long")


def test_record_event_moves_the_version_the_live_page_watches(responder):
    incident = declare(responder)
    before = incident.version
    services.incident_record_event(incident=incident, kind="note", actor=responder, message="hi")
    incident.refresh_from_db()
    assert incident.version > before == TimelineEvent.objects.filter(incident=incident).order_by("id")[0].pk


def test_a_registered_panel_is_on_the_page_and_in_the_live_poll(client, responder, monkeypatch):
    monkeypatch.setattr(panels, "_PANELS", dict(panels._PANELS))
    panels.register(
        panels.Panel(
            id="incident-signals",  # replaces detection's panel with one whose template is known
            template="detection/incident_signals.html",
            context=lambda incident, user: {"signals": []},
        )
    )
    incident = declare(responder)
    client.force_login(responder)
    body = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert '<section id="incident-signals" class="card" aria-labelledby' in body
    polled = client.get(reverse("incidents:poll", args=[incident.pk]), {"v": 0}).content.decode()
    assert '<section id="incident-signals" class="card" hx-swap-oob="true"' in polled
    with pytest.raises(ValueError, match="slot must be one of"):
        panels.register(panels.Panel(id="x", template="x.html", context=lambda i, u: {}, slot="footer"))
