"""`prober report`'s "claimed vs measured" section: per source, over the report's window."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlite_utils
from tabulate import tabulate

from prober.claims.findings import ClaimFinding, Unmeasured, findings_for, median_and_worst, unmeasured
from prober.claims.record import links, sources
from prober.model import Incident, iso

if TYPE_CHECKING:
    from prober.report import Report


@dataclass(frozen=True)
class SourceSummary:
    """What one official page said during the measured outages of its checks, and what it cried alone."""

    source: str
    checks: tuple[str, ...]
    findings: list[tuple[Incident, ClaimFinding]] = field(default_factory=list)
    unmeasured: list[Unmeasured] = field(default_factory=list)

    @property
    def lags(self) -> list[float]:
        """The acknowledgement lags of the outages it acknowledged."""
        return [f.acknowledgement_lag_s for _, f in self.findings if f.acknowledgement_lag_s is not None]

    @property
    def silent_s(self) -> float:
        """Seconds it claimed operational during measured outages, in all."""
        return sum(f.silent_s for _, f in self.findings)


@dataclass(frozen=True)
class ClaimsSection:
    """Every source's summary, and the finding of each incident of a linked check."""

    summaries: list[SourceSummary]
    by_incident: dict[tuple[str, datetime], ClaimFinding]

    def attach(self, report_json: dict[str, Any]) -> dict[str, Any]:
        """`prober report --json` with a `claim` object on linked incidents and a `claims` section."""
        for item in [*report_json.get("incidents", []), *report_json.get("longest", [])]:
            for (check, started), found in self.by_incident.items():
                if item.get("check") == check and item.get("started_at") == iso(started):
                    item["claim"] = found.to_json()
        report_json["claims"] = [_summary_json(s) for s in self.summaries]
        return report_json

    def text(self) -> str:
        """The section as text; empty without any source."""
        if not self.summaries:
            return ""
        out = ["Claimed vs measured (what each official status page said during the outages prober measured)"]
        rows = []
        for s in self.summaries:
            median, worst = median_and_worst(s.lags)
            rows.append([
                s.source, len(s.findings), len(s.lags), _minutes(median), _minutes(worst),
                _minutes(s.silent_s), len(s.unmeasured),
            ])  # fmt: skip
        head = ["source", "outages measured", "acknowledged", "median lag", "worst lag", "silent",
                "official incidents not measured"]  # fmt: skip
        out += [tabulate(rows, headers=head, disable_numparse=True), ""]
        for s in self.summaries:
            for u in s.unmeasured:
                created = f", created {iso(u.created_at)}" if u.created_at else ""
                listed = f"listed from {iso(u.seen_from)} to {iso(u.seen_until)}"
                out.append(f'{s.source}: official incident "{u.name}"{created}, {listed}: no outage measured')
        return "\n".join(out).rstrip() + "\n"


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _summary_json(s: SourceSummary) -> dict[str, Any]:
    median, worst = median_and_worst(s.lags)
    return {
        "source": s.source,
        "checks": list(s.checks),
        "outages_measured": len(s.findings),
        "acknowledged": len(s.lags),
        "median_lag_s": median,
        "worst_lag_s": worst,
        "silent_s": round(s.silent_s, 3),
        "official_incidents_not_measured": [
            {
                "name": u.name,
                "created_at": None if u.created_at is None else iso(u.created_at),
                "seen_from": iso(u.seen_from),
                "seen_until": iso(u.seen_until),
            }
            for u in s.unmeasured
        ],
    }


def section(db: sqlite_utils.Database, report: Report) -> ClaimsSection:
    """The claims section of a report, read from the claims and claim_links tables."""
    known = links(db)
    found = findings_for(db, report.incidents, report.now, known)
    names = sorted(set(sources(db)) | {link.source for link in known.values()})
    summaries = []
    for name in names:
        checks = tuple(sorted(c for c, link in known.items() if link.source == name))
        if report.check and report.check not in checks:
            continue
        mine = [i for i in report.incidents if i.check in checks]
        summaries.append(
            SourceSummary(
                source=name,
                checks=checks,
                findings=[(i, found[(i.check, i.started_at)]) for i in mine],
                unmeasured=unmeasured(db, name, mine, report.since, report.until),
            )
        )
    return ClaimsSection(summaries, found)
