"""`prober report`'s section on maintenance windows: the spans in the report's window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate

from prober.report import span, when


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
