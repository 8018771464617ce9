"""The playbook as versioned data: validation, YAML in and out, and adoption of a new version.

The playbook (severities, incident types with their runbooks, checklists, and the sections other
apps register: the escalation matrix, the communication plan) is one document. A change to it is a
new `PlaybookVersion`, adopted through `playbook_adopt`: the document is validated whole (every error
reported, with its path), loaded into the tables the console reads (incidents' own, and each
registered section through its app's loader) and stored, in one transaction. Versions are never
edited. Adopting the document of the current version changes nothing.

`manage.py load_playbook` adopts `incidents/data/playbook.yaml` (source "file"): version 1 on a fresh
database, nothing new while the file is unchanged.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from django.db import connection, transaction
from django.utils import timezone

from incidents.models import (
    Checklist,
    ChecklistKind,
    IncidentType,
    PlaybookReview,
    PlaybookVersion,
    SeverityLevel,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PLAYBOOK_FILE = Path(__file__).parent / "data" / "playbook.yaml"
CORE_SECTIONS = ("severities", "incident_types", "checklists")
# Serialises adoptions (two at once would both compute the same next number).
_ADOPT_LOCK = 0x5C_DB_0B


class PlaybookError(ValueError):
    """A playbook that cannot be read or adopted; `errors` lists every problem found."""

    def __init__(self, errors: str | list[str], *, intro: str = "") -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        lines = [f"- {e}" for e in self.errors] if intro else self.errors
        super().__init__("\n".join([intro, *lines] if intro else lines))


class PlaybookMovedOn(PlaybookError):
    """An adoption meant to replace one version found another in force (see `playbook_adopt`'s
    `expected`): the change was written against a playbook that is no longer the current one."""

    def __init__(self, *, expected: PlaybookVersion, current: PlaybookVersion | None) -> None:
        self.expected, self.current = expected, current
        now = f"version {current.number} is in force" if current else "there is no version in force"
        super().__init__(f"The playbook moved on: {now}, not version {expected.number}.")


# --- Sections other apps own -----------------------------------------------------------------


Loader = Callable[[Any], int]
Validator = Callable[[Any], list[str]]


@dataclass(frozen=True)
class Section:
    name: str
    loader: Loader
    validator: Validator | None = None


# Sections of the playbook that other apps load (escalation matrix, communication), registered from
# their AppConfig.ready. A loader makes its tables say what the section says and returns how many
# rows; a validator returns the section's errors, each with its path inside the section
# ("routes[1].channel: …"), so nothing half-valid is ever loaded.
_SECTIONS: dict[str, Section] = {}


def register_section(name: str, loader: Loader, validator: Validator | None = None) -> None:
    if name in CORE_SECTIONS:
        raise ValueError(f"{name!r} is one of incidents' own sections")
    _SECTIONS[name] = Section(name, loader, validator)


def sections() -> list[str]:
    """Every section name a playbook may have, in the order the pages show them."""
    return [*CORE_SECTIONS, *_SECTIONS]


# --- Validation ------------------------------------------------------------------------------


def validate_playbook(document: dict[str, Any]) -> list[str]:
    """Every error of `document`, human-readable, each with its path
    ("severities[2].response_minutes: must be a positive integer"). Empty: the document is valid."""
    if not isinstance(document, dict):
        return ["the playbook must be a mapping of sections (severities, incident_types, checklists, …)"]
    errors: list[str] = []
    _json_values(document, "", errors)
    if errors:
        return errors  # the rest assumes plain data
    for name in CORE_SECTIONS:
        if name not in document:
            errors.append(f"{name}: this section is required")
    for name in document:
        if name not in CORE_SECTIONS and name not in _SECTIONS:
            errors.append(f"{name}: unknown section (known: {', '.join(sections())})")
    if "severities" in document:
        _severities(document["severities"], errors)
    if "incident_types" in document:
        _incident_types(document["incident_types"], errors)
    if "checklists" in document:
        _checklists(document["checklists"], errors)
    for section in _SECTIONS.values():
        if section.name in document and section.validator is not None:
            try:
                found = section.validator(document[section.name])
            except Exception as exc:  # a validator that trips over odd data reports it, never crashes
                found = [f"cannot be read ({exc.__class__.__name__}: {exc})"]
            errors.extend(_at(section.name, e) for e in found)
    return errors


def _at(path: str, error: str) -> str:
    """Prefix a section's own error path ("routes[1]: …", "[2].steps: …", ": must be a list") with
    the section's name."""
    return f"{path}{error}" if error.startswith(("[", ":")) else f"{path}.{error}"


def _json_values(value: Any, path: str, errors: list[str]) -> None:
    """Only what JSON can hold (a YAML date or a number as a mapping key would not come back)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append(f"{path or '(top)'}: key {key!r} must be text (quote it)")
                continue
            _json_values(item, f"{path}.{key}" if path else key, errors)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _json_values(item, f"{path}[{i}]", errors)
    elif value is not None and not isinstance(value, str | bool | int | float):
        errors.append(f"{path}: {type(value).__name__} is not allowed here (quote it to make it text)")
    elif isinstance(value, float) and not math.isfinite(value):
        errors.append(f"{path}: must be a finite number")


# Field checks: each returns the error text, or "" when the value is fine.


def positive_int(value: Any) -> str:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return "" if ok else "must be a positive integer"


def non_negative_int(value: Any) -> str:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return "" if ok else "must be zero or a positive integer"


def boolean(value: Any) -> str:
    return "" if isinstance(value, bool) else "must be true or false"


def text(limit: int, *, blank: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            return "must be text"
        if not blank and not value.strip():
            return "must not be empty"
        if len(value) > limit:
            return f"must be at most {limit} characters (is {len(value)})"
        return ""

    return check


def text_list(value: Any) -> str:
    if not isinstance(value, list):
        return "must be a list of texts"
    bad = [i for i, item in enumerate(value) if not isinstance(item, str) or not item.strip()]
    return f"item {bad[0]} must be non-empty text" if bad else ""


def check_fields(
    item: Any,
    path: str,
    fields: Mapping[str, Callable[[Any], str]],
    errors: list[str],
    *,
    required: tuple[str, ...] = (),
) -> bool:
    """Check a mapping's fields; unknown fields and missing required ones are errors. Returns whether
    the item was a mapping at all."""
    if not isinstance(item, dict):
        errors.append(f"{path}: must be a mapping of fields")
        return False
    for name in required:
        if name not in item:
            errors.append(f"{path}.{name}: is required")
    for name, value in item.items():
        check = fields.get(name)
        if check is None:
            errors.append(f"{path}.{name}: unknown field (expected {', '.join(fields)})")
        elif problem := check(value):
            errors.append(f"{path}.{name}: {problem}")
    return True


def list_of(value: Any, path: str, errors: list[str]) -> list[Any]:
    if not isinstance(value, list):
        errors.append(f"{path}: must be a list")
        return []
    return value


def severity_level(value: Any) -> str:
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4
    return "" if ok else "must be a severity level, 1 to 4"


_SEVERITY_FIELDS: dict[str, Callable[[Any], str]] = {
    "level": severity_level,
    "name": text(40),
    "description": text(300),
    "response_minutes": positive_int,
    "examples": text_list,
    "kill_switch_default": boolean,
    "commander_required": boolean,
    "pre_recovery_required": boolean,
    "monitoring_minutes": non_negative_int,
}
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


def _slug(value: Any) -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        return "must be a slug (letters, digits, - and _)"
    return "" if len(value) <= 40 else "must be at most 40 characters"


_TYPE_FIELDS: dict[str, Callable[[Any], str]] = {
    "slug": _slug,
    "name": text(80),
    "playbook_section": text(10, blank=True),
    "kill_switch_reason": text(30, blank=True),
    "runbook_steps": text_list,
    "alert_names": text_list,
}


def _severities(value: Any, errors: list[str]) -> None:
    seen: dict[int, int] = {}
    for i, s in enumerate(list_of(value, "severities", errors)):
        path = f"severities[{i}]"
        if check_fields(s, path, _SEVERITY_FIELDS, errors, required=("level", "name", "response_minutes")):
            level = s.get("level")
            if not severity_level(level):
                if level in seen:
                    errors.append(f"{path}.level: SEV-{level} is already severities[{seen[level]}]")
                seen.setdefault(level, i)
    if isinstance(value, list):
        missing = [f"SEV-{n}" for n in range(1, 5) if n not in seen]
        if missing:
            errors.append(f"severities: {', '.join(missing)} missing (the playbook has levels 1 to 4)")


def _incident_types(value: Any, errors: list[str]) -> None:
    seen: dict[str, int] = {}
    types = list_of(value, "incident_types", errors)
    if isinstance(value, list) and not types:
        errors.append("incident_types: at least one type is needed")
    for i, t in enumerate(types):
        path = f"incident_types[{i}]"
        if check_fields(t, path, _TYPE_FIELDS, errors, required=("slug", "name")):
            slug = t.get("slug")
            if isinstance(slug, str):
                if slug in seen:
                    errors.append(f"{path}.slug: {slug!r} is already incident_types[{seen[slug]}]")
                seen.setdefault(slug, i)


def _checklists(value: Any, errors: list[str]) -> None:
    from incidents import facts

    known_facts = set(facts.names())
    seen: dict[str, int] = {}
    fields: dict[str, Callable[[Any], str]] = {
        "kind": lambda v: (
            "" if v in ChecklistKind.values else f"must be one of {', '.join(ChecklistKind.values)}"
        ),
        "title": text(80),
        "items": text_list,
        "checks": lambda v: "" if isinstance(v, dict) else "must be a mapping of item text to fact name",
    }
    for i, c in enumerate(list_of(value, "checklists", errors)):
        path = f"checklists[{i}]"
        if not check_fields(c, path, fields, errors, required=("kind", "title", "items")):
            continue
        kind = c.get("kind")
        if isinstance(kind, str):
            if kind in seen:
                errors.append(f"{path}.kind: {kind!r} is already checklists[{seen[kind]}]")
            seen.setdefault(kind, i)
        checks = c.get("checks")
        if isinstance(checks, dict):
            items = {str(x) for x in c.get("items") or [] if isinstance(x, str)}
            for item, fact in checks.items():
                if item not in items:
                    errors.append(f"{path}.checks[{item!r}]: names an item the checklist does not have")
                if not isinstance(fact, str) or (known_facts and fact not in known_facts):
                    errors.append(
                        f"{path}.checks[{item!r}]: unknown fact {fact!r} "
                        f"(known: {', '.join(sorted(known_facts))})"
                    )


# --- YAML ------------------------------------------------------------------------------------


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(yaml.SafeDumper):
    """Multi-line text (message templates) as literal blocks, as a person writes it. The pure-Python
    emitter: libyaml's escapes characters beyond the BMP (the templates' emoji) and then gives up the
    literal block."""


# Characters YAML reads as line breaks (or folds) when written raw: only double quotes keep them.
_BREAKS = frozenset("\r\x85\u2028\u2029")


def _represent_text(dumper: Any, value: str) -> Any:
    style = '"' if _BREAKS.intersection(value) else "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_text)


def parse_playbook_yaml(text: str) -> dict[str, Any]:
    """The document in `text`; PlaybookError (with the line and column) when it is not YAML or not a
    mapping. Validation is separate (`validate_playbook`)."""
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        raise PlaybookError(f"{where}{problem}{f' ({context})' if context else ''}") from exc
    if not isinstance(document, dict):
        raise PlaybookError("the playbook must be a mapping of sections (severities, incident_types, …)")
    return document


def playbook_yaml(document: dict[str, Any]) -> str:
    """`document` as YAML, in its own key order; `parse_playbook_yaml` of it gives the document back."""
    # Cached on the JSON text (key order included): the test suite adopts the same file before every
    # test, and the pure-Python emitter takes tens of milliseconds.
    try:
        key = json.dumps(document, ensure_ascii=False)
    except (TypeError, ValueError):
        return _dump(document)  # not JSON (validation says where): rendered, not cached
    return _yaml(key)


@lru_cache(maxsize=16)
def _yaml(document_json: str) -> str:
    return _dump(json.loads(document_json))


def _dump(document: Any) -> str:
    return str(
        yaml.dump(
            document,
            Dumper=_Dumper,
            sort_keys=False,
            allow_unicode=True,
            width=100,
            default_flow_style=False,
        )
    )


def canonical(document: Any) -> str:
    """One text per document whatever its key order (PostgreSQL's jsonb keeps none): for equality."""
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=8)
def _parsed_file(path: str, mtime_ns: int, size: int) -> tuple[dict[str, Any], str]:
    document = parse_playbook_yaml(Path(path).read_text(encoding="utf-8"))
    return document, canonical(document)


def read_playbook(path: Path = PLAYBOOK_FILE) -> dict[str, Any]:
    """The playbook file's document, validated (PlaybookError lists every problem). Parsing is cached
    while the file is unchanged: the test suite adopts it before every test."""
    stat = path.stat()
    document, _ = _parsed_file(str(path), stat.st_mtime_ns, stat.st_size)
    errors = validate_playbook(document)
    if errors:
        raise PlaybookError(errors, intro=f"{path} is not a valid playbook:")
    return copy.deepcopy(document)


# --- Versions --------------------------------------------------------------------------------


def current_version() -> PlaybookVersion | None:
    return PlaybookVersion.objects.order_by("-number").first()


def _lock_adoption() -> None:
    """Serialise adoptions and review records until the transaction ends. PostgreSQL takes an
    advisory lock; SQLite (the embedded default of `make run`) allows one writer at a time anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADOPT_LOCK])


@transaction.atomic
def playbook_adopt(
    *,
    document: dict[str, Any],
    note: str,
    actor: User | None,
    source: str,
    expected: PlaybookVersion | None = None,
) -> PlaybookVersion:
    """Make `document` the playbook in force.

    1. Validate it: PlaybookError listing every error, and nothing changes.
    2. Take the adoption lock; with `expected` (the version a change was written against), refuse
       with PlaybookMovedOn when another version is in force by now: a change written against an
       older playbook would silently undo what was adopted since. The same document as the current
       version returns that version.
    3. Load it into the tables (incidents' own, then each registered section's loader).
    4. Store it as the next version.
    Incidents already open keep what they copied when they started (checklists, runbook, response
    deadline, escalation chain); incidents declared from now on record this version.
    """
    errors = validate_playbook(document)
    if errors:
        raise PlaybookError(errors)
    _lock_adoption()
    current = current_version()
    if expected is not None and (current is None or current.pk != expected.pk):
        raise PlaybookMovedOn(expected=expected, current=current)
    if current is not None and canonical(current.document) == canonical(document):
        return current
    document = copy.deepcopy(document)
    counts = _load(document)
    version = PlaybookVersion.objects.create(
        number=current.number + 1 if current else 1,
        document=document,
        yaml=playbook_yaml(document),
        note=note.strip(),
        source=source[:60],
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    version.loaded = counts  # type: ignore[attr-defined]  # what the command reports
    return version


def _load(data: dict[str, Any]) -> dict[str, int]:
    """Make the tables say what the (valid) document says."""
    for s in data["severities"]:
        SeverityLevel.objects.update_or_create(
            level=s["level"], defaults={k: v for k, v in s.items() if k != "level"}
        )
    for i, t in enumerate(data["incident_types"]):
        defaults = {k: v for k, v in t.items() if k != "slug"} | {"position": i}
        IncidentType.objects.update_or_create(slug=t["slug"], defaults=defaults)
    # A type the playbook no longer lists stays in the table: incidents (and other apps' rows) refer to
    # it. It is no longer part of any version's document.
    for c in data["checklists"]:
        Checklist.objects.update_or_create(
            kind=c["kind"], defaults={"title": c["title"], "items": c["items"], "checks": c.get("checks", {})}
        )
    Checklist.objects.exclude(kind__in=[c["kind"] for c in data["checklists"]]).delete()
    counts = {k: len(data[k]) for k in CORE_SECTIONS}
    for section in _SECTIONS.values():
        if section.name in data:
            try:
                counts[section.name] = section.loader(data[section.name])
            except (KeyError, TypeError, ValueError) as exc:
                raise PlaybookError(f"{section.name}: {exc}") from exc
    return counts


def load_playbook(path: Path = PLAYBOOK_FILE) -> PlaybookVersion:
    """Adopt the playbook file (source "file"): a new version only when it differs from the current."""
    return playbook_adopt(
        document=read_playbook(path), note=f"Loaded from {path.name}", actor=None, source="file"
    )


# --- The quarterly review --------------------------------------------------------------------

REVIEW_DAYS = 90  # the playbook's "reviewed quarterly"


def last_reviewed_at() -> datetime | None:
    """When the playbook was last looked at as a whole: its latest version, or a later recorded
    "reviewed, no change"."""
    version = PlaybookVersion.objects.order_by("-number").values_list("created_at", flat=True).first()
    review = PlaybookReview.objects.order_by("-reviewed_at").values_list("reviewed_at", flat=True).first()
    found = [t for t in (version, review) if t is not None]
    return max(found) if found else None


def playbook_review_due() -> date | None:
    """The date the next quarterly review is due (None before the first version)."""
    last = last_reviewed_at()
    return timezone.localdate(last) + timedelta(days=REVIEW_DAYS) if last else None


def playbook_review_overdue(today: date | None = None) -> date | None:
    """The due date when the review is due (today or earlier), else None."""
    due = playbook_review_due()
    return due if due is not None and due <= (today or timezone.localdate()) else None


@transaction.atomic
def playbook_review_record(*, actor: User | None, note: str = "") -> PlaybookReview:
    """Record "reviewed, no change" for the version in force: the next review falls due 90 days on.
    A second record the same day by the same person returns the first (a double click)."""
    _lock_adoption()
    version = current_version()
    if version is None:
        raise PlaybookError("There is no playbook version to review yet.")
    latest = PlaybookReview.objects.order_by("-reviewed_at").first()
    if (
        latest is not None
        and latest.version_id == version.pk
        and latest.reviewed_by_id == getattr(actor, "pk", None)
        and timezone.localdate(latest.reviewed_at) == timezone.localdate()
    ):
        return latest
    return PlaybookReview.objects.create(
        version=version,
        reviewed_by=actor if getattr(actor, "pk", None) else None,
        note=note.strip()[:2000],
    )
