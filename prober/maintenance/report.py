"""`prober report`'s section on maintenance windows: the spans in the report's window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlite_utils
from tabulate import tabulate

from prober.maintenance.record import spans_between
from prober.model import iso
from prober.terminal import span, when


def windows_in(
    db: sqlite_utils.Database, since: datetime, until: datetime, check: str | None = None
) -> tuple[dict[str, Any], ...]:
    """The recorded spans overlapping [since, until) (of the windows covering `check`, if given)."""
    spans = spans_between(db, since, until)
    return tuple(s for s in spans if check is None or s["checks"] is None or check in s["checks"])


def windows_json(s: Mapping[str, Any]) -> dict[str, Any]:
    """A span for `prober report --json`."""
    checks = s["checks"]
    return {
        **s,
        "starts_at": iso(s["starts_at"]),
        "ends_at": iso(s["ends_at"]),
        "checks": checks and list(checks),
    }


def windows_table(spans: Sequence[Mapping[str, Any]]) -> str:
    """The spans as a table: window, start, end, length, how it recurs, the checks it covers."""
    rows = [
        [
            s["name"],
            when(s["starts_at"]),
            when(s["ends_at"]),
            span(s["ends_at"] - s["starts_at"]),
            f"{s['every']} ({s['timezone']})" if s["every"] else "one-off",
            "every check" if s["checks"] is None else ", ".join(s["checks"]),
        ]
        for s in spans
    ]
    head = ["window", "start", "end", "length", "recurs", "checks"]
    return tabulate(rows, headers=head, disable_numparse=True)
