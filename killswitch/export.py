"""CSV export of audit records, safe to open in a spreadsheet. A record of the drill target says
DRILL in its `drill` column, as drills are marked on every page and export."""

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
    "drill",
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
    from killswitch.targets import all_targets

    drill = {name for name, target in all_targets().items() if target.drill}
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    for r in records:
        computed = {
            "created_at": r.created_at.isoformat(),
            "drill": "DRILL" if r.target in drill else "",
            "state_before": json.dumps(r.state_before, sort_keys=True),
            "state_after": json.dumps(r.state_after, sort_keys=True),
        }
        values = [computed[c] if c in computed else getattr(r, c) for c in COLUMNS]
        yield writer.writerow([escape_formula(v) for v in values])
