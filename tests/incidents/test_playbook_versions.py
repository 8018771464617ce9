"""The playbook as versioned data: validation, YAML round trip, adoption, incidents keeping the version
they started with, and the pages that show versions and their diffs."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from comms.models import Route
from escalation.models import PolicyStep
from incidents.models import Checklist, ChecklistKind, IncidentType, PlaybookVersion, Severity, SeverityLevel
from incidents.playbook import (
    PlaybookError,
    PlaybookMovedOn,
    current_version,
    parse_playbook_yaml,
    playbook_adopt,
    playbook_yaml,
    read_playbook,
    validate_playbook,
)
from tests.incidents.factories import declare

pytestmark = pytest.mark.django_db


@pytest.fixture
def doc() -> dict[str, Any]:
    return read_playbook()


def adopt(document: dict[str, Any], note: str = "change", actor: Any = None) -> PlaybookVersion:
    return playbook_adopt(document=document, note=note, actor=actor, source="admin")


# --- Validation ----------------------------------------------------------------------------------


def test_the_playbook_file_is_valid(doc):
    assert validate_playbook(doc) == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            lambda d: d["severities"][2].update(response_minutes=0),
            "severities[2].response_minutes: must be a positive integer",
        ),
        (
            lambda d: d["severities"][0].update(response_minutes="15"),
            "severities[0].response_minutes: must be a positive integer",
        ),
        (
            lambda d: d["severities"][1].update(commander_required="yes please"),
            "severities[1].commander_required: must be true or false",
        ),
        (lambda d: d["severities"][3].update(level=1), "severities[3].level: SEV-1 is already severities[0]"),
        (lambda d: d["severities"].pop(), "severities: SEV-4 missing (the playbook has levels 1 to 4)"),
        (
            lambda d: d["severities"][0].update(level=7),
            "severities[0].level: must be a severity level, 1 to 4",
        ),
        (
            lambda d: d["severities"][0].update(colour="red"),
            "severities[0].colour: unknown field (expected level, name, description",
        ),
        (lambda d: d["severities"][0].pop("name"), "severities[0].name: is required"),
        (
            lambda d: d["severities"][0].update(name="x" * 41),
            "severities[0].name: must be at most 40 characters",
        ),
        (
            lambda d: d["severities"][0].update(examples="one"),
            "severities[0].examples: must be a list of texts",
        ),
        (
            lambda d: d["incident_types"][1].update(slug="not a slug"),
            "incident_types[1].slug: must be a slug",
        ),
        (
            lambda d: d["incident_types"][2].update(slug="other"),
            "incident_types[4].slug: 'other' is already incident_types[2]",
        ),
        (
            lambda d: d["incident_types"][0].update(runbook_steps=["ok", ""]),
            "incident_types[0].runbook_steps: item 1 must be non-empty text",
        ),
        (lambda d: d.update(incident_types=[]), "incident_types: at least one type is needed"),
        (lambda d: d["checklists"][0].update(kind="nonsense"), "checklists[0].kind: must be one of triage"),
        (
            lambda d: d["checklists"][2].update(kind="triage"),
            "checklists[2].kind: 'triage' is already checklists[0]",
        ),
        (
            lambda d: d["checklists"][1]["checks"].update({"Nonexistent item": "services_healthy"}),
            "checklists[1].checks['Nonexistent item']: names an item the checklist does not have",
        ),
        (
            lambda d: d["checklists"][1]["checks"].update({"Root cause identified": "mind_reading"}),
            "checklists[1].checks['Root cause identified']: unknown fact 'mind_reading'",
        ),
        (lambda d: d.pop("checklists"), "checklists: this section is required"),
        (lambda d: d.update(weather={"sunny": True}), "weather: unknown section (known: severities"),
        (
            lambda d: d["severities"][0].update(examples=[__import__("datetime").date(2026, 1, 1)]),
            "severities[0].examples[0]: date is not allowed here",
        ),
        (
            lambda d: d["checklists"][0].update(checks={1: "services_healthy"}),
            "checklists[0].checks: key 1 must be text",
        ),
        # Sections other apps register validate themselves, under their section's name.
        (
            lambda d: d["escalation"][0]["steps"][1].update(target="the_moon"),
            "escalation[0].steps[1].target: must be one of",
        ),
        (
            lambda d: d["escalation"][1]["steps"][0].update(after_minutes=-5),
            "escalation[1].steps[0].after_minutes: must be zero or a positive integer",
        ),
        (
            lambda d: d["communication"]["routes"][0].update(channel="#incidents!"),
            "communication.routes[0].channel: must be a channel name",
        ),
        (
            lambda d: d["communication"]["templates"][1].update(title="{% if %}"),
            "communication.templates[1].title: template does not parse",
        ),
        (lambda d: d["communication"].pop("summary_channel"), "communication.summary_channel: is required"),
        (lambda d: d.update(escalation="all hands"), "escalation: must be a list"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_kind_of_error_is_reported_with_its_path(doc, change, error):
    change(doc)
    errors = validate_playbook(doc)
    assert any(e.startswith(error) for e in errors), errors


def test_every_error_is_reported_at_once(doc):
    doc["severities"][2]["response_minutes"] = -1
    doc["incident_types"][0]["name"] = ""
    doc["escalation"][0]["steps"][0]["action"] = "shout"
    errors = validate_playbook(doc)
    assert [e.split(":")[0] for e in errors] == [
        "severities[2].response_minutes",
        "incident_types[0].name",
        "escalation[0].steps[0].action",
    ]


def test_a_playbook_that_is_not_a_mapping_is_one_error():
    assert validate_playbook(["severities"]) == [  # type: ignore[arg-type]
        "the playbook must be a mapping of sections (severities, incident_types, checklists, …)"
    ]


def test_bad_yaml_says_where():
    with pytest.raises(PlaybookError, match=r"^line 3, column 3: "):
        parse_playbook_yaml("severities:\n  - level: 1\n  name: [unclosed\n")
    with pytest.raises(PlaybookError, match="must be a mapping"):
        parse_playbook_yaml("- just\n- a list\n")


# --- YAML round trip -------------------------------------------------------------------------


def test_the_real_playbook_survives_a_round_trip(doc):
    text = playbook_yaml(doc)
    assert parse_playbook_yaml(text) == doc
    assert "text: |" in text  # message templates stay readable blocks
    assert "🚨 INCIDENT" in text  # not escaped


_texts = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=60
) | st.sampled_from(
    ["yes", "no", "null", "~", "1.0", "0x10", "- item", "a: b", "#x", " lead", "trail ", "x\n", "\n\ny"]
)
_values = st.one_of(
    _texts, st.integers(-(10**6), 10**6), st.booleans(), st.none(), st.lists(_texts, max_size=3)
)


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            found += _paths(value, (*prefix, i))
    return found


BASE = parse_playbook_yaml((read_playbook.__defaults__[0]).read_text())  # type: ignore[index]
PATHS = _paths(BASE)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(PATHS), _values), min_size=1, max_size=4))
def test_small_mutations_of_the_playbook_survive_a_round_trip(mutations):
    document = copy.deepcopy(BASE)
    for path, value in mutations:
        target = document
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced the container
    assert parse_playbook_yaml(playbook_yaml(document)) == document


# --- Adoption --------------------------------------------------------------------------------


def test_loading_the_file_creates_version_one_once():
    first = current_version()
    assert first is not None and (first.number, first.source) == (1, "file")
    call_command("load_playbook", verbosity=0)
    call_command("load_playbook", verbosity=0)
    assert PlaybookVersion.objects.count() == 1
    assert parse_playbook_yaml(first.yaml) == read_playbook()


def test_adopting_a_change_makes_a_new_version_and_loads_every_section(doc, lead):
    doc["severities"][2]["response_minutes"] = 30
    doc["checklists"][0]["items"].append("War room opened")
    doc["escalation"][3]["steps"][0]["after_minutes"] = 5
    doc["communication"]["routes"][3]["channel"] = "low-priority"
    version = adopt(doc, note="Faster SEV-3 response", actor=lead)
    assert (version.number, version.note, version.created_by, version.source) == (
        2,
        "Faster SEV-3 response",
        lead,
        "admin",
    )
    assert SeverityLevel.objects.get(level=3).response_minutes == 30
    assert Checklist.objects.get(kind="triage").items[-1] == "War room opened"
    assert PolicyStep.objects.get(severity=4, position=0).after_minutes == 5
    assert Route.objects.get(severity=4).channel == "low-priority"
    assert adopt(copy.deepcopy(doc), note="again").pk == version.pk  # identical: no new version
    assert current_version() == version


def test_an_adoption_expecting_an_older_version_is_refused_and_changes_nothing(doc):
    v1 = current_version()
    assert v1 is not None
    doc["severities"][2]["response_minutes"] = 30
    v2 = adopt(copy.deepcopy(doc))
    doc["severities"][2]["response_minutes"] = 60
    with pytest.raises(PlaybookMovedOn, match="version 2 is in force, not version 1"):
        playbook_adopt(document=doc, note="late", actor=None, source="proposal:7", expected=v1)
    assert current_version() == v2 and SeverityLevel.objects.get(level=3).response_minutes == 30
    v3 = playbook_adopt(document=doc, note="on time", actor=None, source="proposal:7", expected=v2)
    assert (v3.number, v3.source_proposal_id, v2.source_proposal_id) == (3, 7, None)


def test_a_version_cannot_be_changed():
    version = current_version()
    assert version is not None
    version.note = "rewritten history"
    with pytest.raises(ValueError, match="never changed"):
        version.save()


def test_an_invalid_document_changes_nothing(doc):
    doc["severities"][0]["name"] = "Catastrophic"
    doc["severities"][2]["response_minutes"] = 0
    doc["escalation"][0]["steps"][0]["target"] = "nobody"
    with pytest.raises(PlaybookError) as refused:
        adopt(doc)
    assert len(refused.value.errors) == 2
    assert PlaybookVersion.objects.count() == 1
    assert SeverityLevel.objects.get(level=1).name == "Critical"


def test_a_type_the_playbook_drops_stays_for_the_incidents_using_it(doc, responder):
    incident = declare(responder, type_slug="security-incident")
    doc["incident_types"] = [t for t in doc["incident_types"] if t["slug"] != "security-incident"]
    adopt(doc)
    assert IncidentType.objects.filter(slug="security-incident").exists()
    assert incident.incident_type.slug == "security-incident"


def test_an_open_incident_keeps_its_playbook_version_and_a_new_one_uses_the_new(doc, responder):
    before = declare(responder, severity=Severity.SEV3, title="Before")
    doc["severities"][2]["response_minutes"] = 30
    doc["checklists"][0]["items"][0] = "Kill switch status read twice"
    doc["incident_types"][4]["runbook_steps"] = ["Look at the dashboards"]
    v2 = adopt(doc)
    after = declare(responder, severity=Severity.SEV3, title="After")
    before.refresh_from_db()
    assert before.playbook_version.number == 1 and after.playbook_version == v2
    assert before.ack_due_at - before.detected_at == timedelta(minutes=240)
    assert after.ack_due_at - after.detected_at == timedelta(minutes=30)

    def first_triage_item(incident: Any) -> str:
        return incident.checklist_items.filter(kind=ChecklistKind.TRIAGE).order_by("position").first().text

    def runbook(incident: Any) -> list[str]:
        return list(
            incident.checklist_items.filter(kind=ChecklistKind.RUNBOOK).values_list("text", flat=True)
        )

    assert first_triage_item(before) == "Kill-switch status checked"
    assert first_triage_item(after) == "Kill switch status read twice"
    assert runbook(before) == [] and runbook(after) == ["Look at the dashboards"]


# --- Pages -----------------------------------------------------------------------------------


def test_the_playbook_page_shows_the_version_in_force_section_by_section(client, viewer):
    client.force_login(viewer)
    body = client.get(reverse("incidents:playbook")).content.decode()
    for section in ("playbook-severities", "playbook-types", "playbook-checklists", "playbook-escalation"):
        assert f'id="{section}"' in body
    assert "Kill-switch ready to deactivate" in body and "version 1" in body
    assert "Reviewed, no change" not in body  # a viewer may not record the review


def test_history_version_download_and_diff(client, viewer, doc, lead):
    doc["severities"][2]["response_minutes"] = 30
    adopt(doc, note="Faster SEV-3", actor=lead)
    client.force_login(viewer)
    history = client.get(reverse("incidents:playbook_versions")).content.decode()
    assert "Faster SEV-3" in history and "lead" in history and ">v2</a>" in history and ">v1</a>" in history
    page = client.get(reverse("incidents:playbook_version", args=[2])).content.decode()
    assert 'id="playbook-yaml"' in page and "response_minutes: 30" in page
    download = client.get(reverse("incidents:playbook_version_yaml", args=[1]))
    assert download["Content-Disposition"] == 'attachment; filename="playbook-v1.yaml"'
    assert parse_playbook_yaml(download.content.decode()) == read_playbook()
    diff = client.get(reverse("incidents:playbook_diff", args=[1, 2])).content.decode()
    assert "1 line added, 1 removed" in diff
    assert "<del>240</del>" in diff and "<ins>30</ins>" in diff
    assert client.get(reverse("incidents:playbook_version", args=[9])).status_code == 404


def test_the_incident_page_names_its_playbook_version(client, responder, incident):
    client.force_login(responder)
    body = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    link = reverse("incidents:playbook_version", args=[1])
    assert f'href="{link}" data-testid="playbook-version">Playbook v1<' in body
