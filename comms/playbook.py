"""Loads the playbook file's `communication` section (routes, templates, the summary channel)."""

from __future__ import annotations

from typing import Any

from django.template import Template, TemplateSyntaxError

from comms.models import MessageTemplate, Route, Setting, TemplateKind


def check_template(text: str) -> None:
    try:
        Template(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template does not parse: {exc}") from exc


def load(section: dict[str, Any]) -> int:
    """Create what is missing; keep what an admin edited (the file gives the defaults)."""
    for route in section["routes"]:
        Route.objects.get_or_create(
            severity=int(route["level"]),
            defaults={"channel": route["channel"], "update_every_minutes": route.get("update_every_minutes")},
        )
    for t in section["templates"]:
        if t["kind"] not in TemplateKind.values:
            raise ValueError(f"unknown template kind {t['kind']!r}")
        check_template(t["title"])
        check_template(t["text"])
        MessageTemplate.objects.get_or_create(
            kind=t["kind"], defaults={"title": t["title"], "text": t["text"]}
        )
    Setting.objects.get_or_create(name="summary_channel", defaults={"value": section["summary_channel"]})
    return len(section["routes"]) + len(section["templates"])
