"""The playbook's `communication` section (routes, templates, the summary channel): validated with
the whole playbook and loaded when a playbook version is adopted (the version is the plan)."""

from __future__ import annotations

import re
from typing import Any

from django.template import Template, TemplateSyntaxError

from comms.models import MessageTemplate, Route, Setting, TemplateKind
from incidents.playbook import check_fields, list_of, positive_int, severity_level

_CHANNEL = re.compile(r"^[-a-zA-Z0-9_]+$")


def check_template(text: str) -> None:
    try:
        Template(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template does not parse: {exc}") from exc


def _template(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        return "must be non-empty text"
    try:
        check_template(value)
    except ValueError as exc:
        return str(exc)
    return ""


def _channel(value: Any) -> str:
    ok = isinstance(value, str) and bool(_CHANNEL.match(value)) and len(value) <= 40
    return "" if ok else "must be a channel name (letters, digits, - and _)"


def _minutes_or_none(value: Any) -> str:
    return "" if value is None else positive_int(value)


def _kind(value: Any) -> str:
    return "" if value in TemplateKind.values else f"must be one of {', '.join(TemplateKind.values)}"


def validate(section: Any) -> list[str]:
    errors: list[str] = []
    fields = {"summary_channel": _channel, "routes": lambda v: "", "templates": lambda v: ""}
    if not check_fields(section, "", fields, errors, required=tuple(fields)):
        return errors
    route = {"level": severity_level, "channel": _channel, "update_every_minutes": _minutes_or_none}
    levels: set[Any] = set()
    for i, r in enumerate(list_of(section.get("routes", []), "routes", errors)):
        if check_fields(r, f"routes[{i}]", route, errors, required=("level", "channel")):
            if r.get("level") in levels:
                errors.append(f"routes[{i}].level: SEV-{r['level']} has two routes")
            levels.add(r.get("level"))
    template = {"kind": _kind, "title": _template, "text": _template}
    kinds: set[Any] = set()
    for i, t in enumerate(list_of(section.get("templates", []), "templates", errors)):
        if check_fields(t, f"templates[{i}]", template, errors, required=tuple(template)):
            if t.get("kind") in kinds:
                errors.append(f"templates[{i}].kind: {t['kind']!r} appears twice")
            kinds.add(t.get("kind"))
    return [e[1:] if e.startswith(".") else e for e in errors]


def load(section: dict[str, Any]) -> int:
    """Make routes, templates and the summary channel what the section says."""
    levels = []
    for route in section["routes"]:
        Route.objects.update_or_create(
            severity=int(route["level"]),
            defaults={"channel": route["channel"], "update_every_minutes": route.get("update_every_minutes")},
        )
        levels.append(int(route["level"]))
    Route.objects.exclude(severity__in=levels).delete()
    for t in section["templates"]:
        MessageTemplate.objects.update_or_create(
            kind=t["kind"], defaults={"title": t["title"], "text": t["text"]}
        )
    Setting.objects.update_or_create(name="summary_channel", defaults={"value": section["summary_channel"]})
    return len(section["routes"]) + len(section["templates"])
