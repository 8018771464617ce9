"""The playbook's messages rendered from an incident. Templates use Django's template syntax with
these variables (README lists them); other apps add variables they know (`provide`): the kill switch
its state, post-mortems their date and action items."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from comms.models import MessageTemplate, UpdateClock
from incidents.models import Incident

_PROVIDERS: dict[str, Callable[[Incident], Any]] = {}


def provide(name: str, provider: Callable[[Incident], Any]) -> None:
    """Register a template variable computed from the incident by another app."""
    _PROVIDERS[name] = provider


def link(incident: Incident) -> str:
    return settings.CONSOLE_URL.rstrip("/") + reverse("incidents:detail", args=[incident.pk])


def duration_text(start: datetime, end: datetime) -> str:
    minutes = max(0, int((end - start).total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _when(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z") if value else "—"


def _next_update(incident: Incident) -> str:
    clock = UpdateClock.objects.filter(incident=incident).values_list("due_at", flat=True).first()
    return _when(clock) if clock else "when there is news"


def variables(incident: Incident, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The template variables. Those that cost a query are callables, which the template engine
    calls only when a template uses them: a burst of notices costs no query per incident."""
    now = timezone.now()
    values: dict[str, Any] = {
        "reference": incident.reference,
        "title": incident.title,
        "description": incident.description or incident.title,
        "severity": incident.get_severity_display(),
        "status": incident.get_status_display(),
        "impact": ", ".join(incident.affected_components) or "being assessed",
        "commander": incident.commander.get_username() if incident.commander else "none yet",
        "next_update": lambda: _next_update(incident),
        "duration": duration_text(incident.detected_at, incident.resolved_at or now),
        "detected_at": _when(incident.detected_at),
        "resolved_at": _when(incident.resolved_at),
        "link": link(incident),
        "war_room": getattr(incident, "war_room_url", "") or "",
        "drill": "DRILL · " if incident.is_drill else "",
        "on_call": True,
        "kill_switch": "unknown",
        "root_cause": "being investigated",
        "action_items": "to follow in the post-mortem",
        "postmortem": "to be scheduled",
        "progress": "",
        "next_steps": "",
    }
    for name, provider in _PROVIDERS.items():
        values[name] = lambda provider=provider: provider(incident)
    for name, value in (extra or {}).items():
        if value not in (None, ""):
            values[name] = value
    return values


def render_text(text: str, values: dict[str, Any]) -> str:
    rendered = Template(text).render(Context(values, autoescape=False))
    lines = [line.rstrip() for line in rendered.strip().splitlines()]
    return "\n".join(lines)


def render(
    kind: str,
    incident: Incident,
    *,
    extra: dict[str, Any] | None = None,
    template: MessageTemplate | None = None,
) -> tuple[str, str]:
    """(title, text) of the `kind` template for this incident (pass `template` to render many)."""
    template = template or MessageTemplate.objects.filter(kind=kind).first()
    if template is None:
        return (
            f"{incident.reference} {incident.title}",
            f"{incident.reference}: {incident.title}\n{link(incident)}",
        )
    values = variables(incident, extra=extra)
    return render_text(template.title, values).replace("\n", " ")[:300], render_text(template.text, values)
