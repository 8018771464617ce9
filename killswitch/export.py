"""CSV export of audit records, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from killswitch.models import AuditRecord

COLUMNS = [
    "seq",
    "created_at",
    "actor_name",
    "actor_role",
    "action",
    "target",
    "reason",
    "request_id",
    "incident_id",
    "ip_address",
    "state_before",
    "state_after",
    "digest",
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def escape_formula(value: object) -> str:
    """Spreadsheets run cells that start with = + - @ (or a tab/CR); prefix those with a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_rows(records: Iterable[AuditRecord]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    for r in records:
        values = [getattr(r, c) for c in COLUMNS]
        values[1] = r.created_at.isoformat()
        values[10] = json.dumps(r.state_before, sort_keys=True)
        values[11] = json.dumps(r.state_after, sort_keys=True)
        yield writer.writerow([escape_formula(v) for v in values])
